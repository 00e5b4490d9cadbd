"""A micro ESPnet experiment (2 epochs on the tiny corpus, ~3 s) for the tests
of stages 10-13 and of loading: averaging, decoding, scoring, packing.

Also the crafted files of the fault-injection tests: a state dict whose
pickle runs code when loaded with ``weights_only=False`` (it creates a
marker file), truncated copies, and packed archives with a payload or a
``meta.yaml`` entry outside the archive.
"""

import io
import shutil
import zipfile
from pathlib import Path
from typing import Dict

import torch
import yaml

from tests.helpers.tiny_corpus import make_tiny_corpus

MICRO_CONFIG = {
    "frontend": "default",
    "frontend_conf": {"n_fft": 256, "win_length": 256, "hop_length": 128, "n_mels": 16},
    "normalize": "utterance_mvn",
    "encoder": "conformer",
    "encoder_conf": {
        "output_size": 16, "attention_heads": 2, "linear_units": 32, "num_blocks": 1,
        "input_layer": "conv2d", "cnn_module_kernel": 3,
    },
    "decoder": "transformer",
    "decoder_conf": {"attention_heads": 2, "linear_units": 32, "num_blocks": 1},
    "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1},
    "optim": "adamw",
    "optim_conf": {"lr": 0.003},
    "scheduler": "warmuplr",
    "scheduler_conf": {"warmup_steps": 4},
    "batch_type": "unsorted",
    "batch_size": 2,
    "seed": 3,
    "num_workers": 0,
    "use_matplotlib": False,
    "use_tensorboard": False,
    "num_att_plot": 0,
    "keep_nbest_models": 2,
    "max_epoch": 2,
}


def train_micro(paths: Dict[str, Path], out_dir: Path, *extra: str) -> Path:
    """Run ESPnet's training (``MSRSASRTask.main``) of the micro config on
    the corpus ``paths`` into ``out_dir``; ``extra`` options come last."""
    import espnet_msrs  # noqa: F401  (registers our classes)
    from espnet_msrs.tasks.asr import MSRSASRTask

    cmd = ["--config", str(paths["train_config"]), "--output_dir", str(out_dir),
           "--token_list", str(paths["token_list"]), "--token_type", "char", "--ngpu", "0"]
    for name in ("train", "valid"):
        d = paths[name]
        cmd += [f"--{name}_data_path_and_name_and_type", f"{d}/wav.scp,speech,sound",
                f"--{name}_data_path_and_name_and_type", f"{d}/text,text,text",
                f"--{name}_shape_file", f"{d}/text"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        MSRSASRTask.main(cmd=cmd + list(extra))
    finally:
        torch.set_num_threads(threads)
    return out_dir


def train_micro_model(root: Path) -> Dict[str, Path]:
    """Train the micro model; returns paths: ``exp`` (ESPnet output dir),
    ``config`` (its config.yaml), ``model`` (valid.acc.ave.pth),
    ``train_config``, the corpus sets and ``token_list``."""
    root = Path(root)
    paths = make_tiny_corpus(root, sets={"train": 4, "valid": 2, "test": 3})
    paths["train_config"] = root / "train.yaml"
    paths["train_config"].write_text(yaml.safe_dump(MICRO_CONFIG))
    exp = train_micro(paths, root / "exp" / "train")
    return {**paths, "exp": exp, "config": exp / "config.yaml",
            "model": exp / "valid.acc.ave.pth"}


def pack_model(config: Path, model: Path, out_zip: Path) -> Path:
    """``python -m espnet2.bin.pack asr`` of a config and a model file, run
    from their experiment root (as stage 13 runs it from the recipe), so
    that ``meta.yaml`` holds relative paths."""
    import contextlib
    import os

    from espnet2.bin.pack import main as pack_main

    root = Path(os.path.commonpath([Path(config).parent, Path(model).parent])).parent
    with contextlib.chdir(root):
        pack_main(["asr", "--asr_train_config", os.path.relpath(config, root),
                   "--asr_model_file", os.path.relpath(model, root),
                   "--outpath", str(Path(out_zip).resolve())])
    return out_zip


class Payload:
    """Unpickled with ``weights_only=False``, creates ``marker`` (a stand-in
    for any code an attacker would run)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def save_with_payload(state: dict, path: Path, marker: Path) -> Path:
    """Save ``state`` plus an entry whose unpickling creates ``marker``."""
    torch.save({**state, "zz_payload": Payload(marker)}, path)
    return path


def truncate(path: Path, fraction: float = 0.5) -> Path:
    """Cut a file (following links) to ``fraction`` of its size, in place."""
    real = Path(path).resolve()
    data = real.read_bytes()
    real.unlink()
    real.write_bytes(data[: int(len(data) * fraction)])
    return real


def rewrite_member(zip_in: Path, zip_out: Path, name_suffix: str, data: bytes) -> Path:
    """Copy a zip, replacing the member whose name ends with ``name_suffix``."""
    with zipfile.ZipFile(zip_in) as src, zipfile.ZipFile(zip_out, "w") as dst:
        for info in src.infolist():
            content = data if info.filename.endswith(name_suffix) else src.read(info)
            dst.writestr(info, content)
    return zip_out


def payload_zip(zip_in: Path, zip_out: Path, marker: Path) -> Path:
    """The packed model with its model file carrying a payload."""
    with zipfile.ZipFile(zip_in) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".pth"))
        state = torch.load(io.BytesIO(zf.read(name)), weights_only=True)
    buf = io.BytesIO()
    torch.save({**state, "zz_payload": Payload(marker)}, buf)
    return rewrite_member(zip_in, zip_out, name, buf.getvalue())


def outside_path_zip(zip_in: Path, zip_out: Path, outside: Path) -> Path:
    """The packed model whose meta.yaml points asr_model_file at ``outside``."""
    with zipfile.ZipFile(zip_in) as zf:
        meta = yaml.safe_load(zf.read("meta.yaml"))
    meta["files"]["asr_model_file"] = str(outside)
    return rewrite_member(zip_in, zip_out, "meta.yaml", yaml.safe_dump(meta).encode())


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst
