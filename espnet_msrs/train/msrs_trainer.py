"""ESPnet Trainer with the MSRS mask-search stopping rule (MSRS Algorithm 1).

Only two hooks differ from espnet2's :class:`Trainer`:

* after each epoch's validation, the model's :class:`MaskSearchController`
  records the binary-mask sparsity (the history is part of the model's
  ``state_dict``, so the checkpoint written right after holds it);
* at the start of the next epoch, if the controller says the mask is stable,
  training stops (:class:`MaskSearchConverged`), and the search artifacts are
  written to the output directory.  A ``--resume true`` of a converged run
  stops at once and rewrites the same artifacts.

Without a controller (dense, low-rank, sparse or grad-masked runs) it behaves
exactly like espnet2's Trainer.
"""

import logging
from pathlib import Path

from espnet2.train.trainer import Trainer

from espnet_msrs.sparsity.controller import MaskSearchConverged, find_controller


class MSRSTrainer(Trainer):
    """espnet2 Trainer + the MSRS mask-search stopping criterion."""

    @classmethod
    def run(cls, model, optimizers, schedulers, train_iter_factory,
            valid_iter_factory, plot_attention_iter_factory, trainer_options,
            distributed_option) -> None:
        controller = find_controller(model)
        try:
            super().run(
                model=model,
                optimizers=optimizers,
                schedulers=schedulers,
                train_iter_factory=train_iter_factory,
                valid_iter_factory=valid_iter_factory,
                plot_attention_iter_factory=plot_attention_iter_factory,
                trainer_options=trainer_options,
                distributed_option=distributed_option,
            )
            stop_reason = "max_epoch"
        except MaskSearchConverged as stop:
            stop_reason = "converged"
            logging.info(str(stop))
        if controller is None:
            return
        if not distributed_option.distributed or distributed_option.dist_rank == 0:
            from espnet_msrs.sparsity.artifacts import write_search_artifacts

            write_search_artifacts(
                model, controller, Path(trainer_options.output_dir), stop_reason
            )

    @classmethod
    def train_one_epoch(cls, model, optimizers, schedulers, iterator, reporter,
                        scaler, summary_writer, options, distributed_option) -> bool:
        controller = find_controller(model)
        if controller is not None and controller.converged:
            raise MaskSearchConverged(
                f"msrs mask search converged: epoch={controller.epochs[-1]} "
                f"sparsity={controller.history[-1]:.4f} "
                f"delta={controller.history[-1] - controller.history[-2]:+.4f} "
                f"< epsilon={controller.epsilon}"
            )
        return super().train_one_epoch(
            model=model,
            optimizers=optimizers,
            schedulers=schedulers,
            iterator=iterator,
            reporter=reporter,
            scaler=scaler,
            summary_writer=summary_writer,
            options=options,
            distributed_option=distributed_option,
        )

    @classmethod
    def validate_one_epoch(cls, model, iterator, reporter, options,
                           distributed_option) -> None:
        super().validate_one_epoch(
            model=model,
            iterator=iterator,
            reporter=reporter,
            options=options,
            distributed_option=distributed_option,
        )
        controller = find_controller(model)
        if controller is not None:
            controller.end_epoch(reporter.epoch)
