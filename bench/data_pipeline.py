#!/usr/bin/env python3
"""Data-pipeline benchmark: how fast training batches of mouth ROIs are made.

Measures frames per second (25 fps video frames of 96×96 grey mouth ROIs)
and × real time, per CPU core and per wall-clock second, for ``.npy`` and
``.mp4`` ROIs, at three levels, all interleaved round-robin in one process
so that the ratios compare like with like (see :mod:`bench.common`):

* ``decode``: reading the video files alone —
  :func:`espnet_msrs.video.io.read_video` on npy and mp4, the swscale decode
  it replaced (every frame through ``to_ndarray(format="gray")`` with
  ``thread_type="AUTO"``: the ``before`` row), and PyAV's bare decode without
  any conversion, with and without decoder threads (the floor);
* ``dataset``: ESPnet's ``ESPnetDataset`` item with our ``video`` data type
  and the ``av`` preprocessor in training mode (wav read, babble noise at a
  random SNR, z-normalisation, random crop and flip, adaptive time masking,
  packing), one process;
* ``inference``: ESPnet's streaming iterator as ``asr_inference`` builds it
  (the ``av`` preprocessor in evaluation mode: centre crop, normalisation,
  packing; batches of one), one process;
* ``iterator``: ESPnet's training iterator — the task's
  ``build_iter_factory`` with its batch sampler, ``CommonCollateFn`` and a
  DataLoader with 1 and N worker processes, as ``asr_train`` builds it
  (``sorted`` batches of ``--batch_size``). ESPnet starts the workers anew
  every epoch; their start-up is part of the figure, a larger share the
  fewer utterances an epoch has.

Per-core rates divide by the CPU time of this process and of the finished
DataLoader workers (``RUSAGE_CHILDREN``); wall rates by elapsed time, which
on a machine shared with other jobs also counts the time spent waiting for a
core. × real time = frames/s ÷ 25.

Input: a Kaldi-style data dir with ``video.scp`` (mp4 or npy), ``wav.scp``
and ``text``, e.g. the demo's stage-2 output after
``cd egs2/synthgrid/avsr1 && ./run.sh --stage 1 --stop_stage 4 --video_format mp4``
(``dump/raw/train``). The first ``--num_utts`` utterances are copied to a work
dir in both formats with the same pixels (mp4 as given, or coded by
:func:`~espnet_msrs.video.io.write_video` from npy; npy decoded from the mp4).

``--paper_configs`` adds a paper-scale estimate of the loader cores one GPU
needs: forward FLOPs per frame of each config counted by torch's
``FlopCounterMode`` (one utterance of ``--paper_frames`` frames), a training
step taken as 3× the forward, and a GPU sustaining ``--gpu_tflops``;
cores per GPU = the GPU's frames/s ÷ the measured per-core frames/s of the
iterator with one worker.

Usage::

    python bench/data_pipeline.py --data_dir egs2/synthgrid/avsr1/dump/raw/train \\
        --num_utts 120 --workers 2 --out exp/benchmark/data_pipeline.json \\
        --paper_configs conf/tuning/train_vsr_large.yaml,conf/tuning/train_avsr.yaml
"""

import argparse
import contextlib
import dataclasses
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

if __package__ in (None, ""):  # run as a script: python bench/data_pipeline.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench import common  # noqa: E402
from espnet_msrs.utils.cli import parse_tool_args  # noqa: E402
from espnet_msrs.utils.data_dir import read_kv  # noqa: E402

logger = logging.getLogger(__name__)

FPS = 25.0
#: Data type name of the ``before`` reader, registered in this process only.
SWSCALE_DATA_TYPE = "swscale_video"


@dataclasses.dataclass
class PipelineConfig:
    """What is measured (see ``--help``)."""

    data_dir: Path
    num_utts: int = 120
    workers: int = 2
    batch_size: int = 8
    repeats: int = 3
    warmup: int = 1
    modality: str = "av"
    crop_size: int = 88
    masks_per_second: float = 1.0
    seed: int = 0


# ------------------------------------------------------------------ readers
def decode_swscale(path: str) -> np.ndarray:
    """The video reader before the luma-plane path: swscale on every frame,
    decoder threads AUTO (``read_video`` up to commit f29cda9)."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return np.stack([f.to_ndarray(format="gray") for f in container.decode(stream)])


def decode_only(path: str, thread_type: Optional[str] = None) -> int:
    """Decode every frame of ``path`` without converting it; returns the count."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        if thread_type is not None:
            stream.thread_type = thread_type
        return sum(1 for _ in container.decode(stream))


def register_swscale_data_type() -> None:
    """Add the ``before`` reader as data type ``swscale_video`` (this process
    and the DataLoader workers it forks)."""
    from espnet2.train import dataset

    from espnet_msrs.train.video_data import VideoScpReader

    class SwscaleVideoScpReader(VideoScpReader):
        def __getitem__(self, key: str) -> np.ndarray:
            return decode_swscale(self.data[key])

    dataset.DATA_TYPES.setdefault(
        SWSCALE_DATA_TYPE,
        dict(func=SwscaleVideoScpReader, kwargs=[], help="bench: swscale reader"),
    )


# -------------------------------------------------------------------- data
def prepare_data(conf: PipelineConfig, work: Path) -> Dict[str, Any]:
    """Copy the first ``num_utts`` utterances to ``work`` in both formats.

    Writes ``work/{mp4,npy}/video.scp`` (same pixels), ``wav.scp``, ``text``,
    ``speech_shape`` (frames), ``text_shape``, a char ``token_list`` and a
    babble wav made from the selected utterances.

    Returns:
        Paths and counts (``frames``, ``seconds``, ``utts``).
    """
    from espnet_msrs.data_prep.noise import make_babble
    from espnet_msrs.video.io import read_video, write_video

    data_dir = Path(conf.data_dir)
    for name in ("video.scp", "wav.scp", "text"):
        if not (data_dir / name).is_file():
            raise ValueError(f"--data_dir {data_dir}: no {name} (need video.scp, "
                             "wav.scp and text)")
    videos = read_kv(data_dir / "video.scp")
    wavs = read_kv(data_dir / "wav.scp")
    texts = read_kv(data_dir / "text")
    keys = [k for k in videos if k in wavs and k in texts][: conf.num_utts]
    if not keys:
        raise ValueError(f"--data_dir {data_dir}: no utterance has video, wav and text")
    lines: Dict[str, List[str]] = {"mp4": [], "npy": []}
    shapes, text_shapes, chars = [], [], set()
    frames = 0
    for key in keys:
        src = common.resolve_scp_path(videos[key], data_dir)
        if src.suffix == ".mp4":
            mp4 = src
        else:
            mp4 = write_video(work / "mp4" / f"{key}.mp4", read_video(src, uid=key))
        video = read_video(mp4, uid=key)
        npy = work / "npy" / f"{key}.npy"
        npy.parent.mkdir(parents=True, exist_ok=True)
        np.save(npy, video)
        lines["mp4"].append(f"{key} {mp4}")
        lines["npy"].append(f"{key} {npy}")
        shapes.append(f"{key} {len(video)}")
        text_shapes.append(f"{key} {len(texts[key])}")
        chars.update(texts[key].replace(" ", ""))
        frames += len(video)
    for fmt, entries in lines.items():
        (work / fmt).mkdir(parents=True, exist_ok=True)
        (work / fmt / "video.scp").write_text("\n".join(entries) + "\n")
    wav_paths = [common.resolve_scp_path(wavs[k], data_dir) for k in keys]
    (work / "wav.scp").write_text("".join(f"{k} {w}\n" for k, w in zip(keys, wav_paths)))
    (work / "text").write_text("".join(f"{k} {texts[k]}\n" for k in keys))
    (work / "speech_shape").write_text("\n".join(shapes) + "\n")
    (work / "text_shape").write_text("\n".join(text_shapes) + "\n")
    tokens = ["<blank>", "<unk>", "<space>"] + sorted(chars) + ["<sos/eos>"]
    (work / "token_list").write_text("\n".join(tokens) + "\n")
    make_babble(work / "wav.scp", work / "babble.wav",
                num_utts=min(30, len(keys)), seed=conf.seed)
    return {"utts": len(keys), "frames": frames, "seconds": frames / FPS,
            "work": str(work), "keys": keys}


def task_args(conf: PipelineConfig, work: Path, video_scp: Path, video_type: str,
              workers: int) -> argparse.Namespace:
    """``asr_train``'s options for the training iterator of this data."""
    from espnet_msrs.tasks.asr import MSRSASRTask

    return MSRSASRTask.get_parser().parse_args([
        "--train_data_path_and_name_and_type", f"{work / 'wav.scp'},speech,sound",
        "--train_data_path_and_name_and_type", f"{video_scp},video,{video_type}",
        "--train_data_path_and_name_and_type", f"{work / 'text'},text,text",
        "--train_shape_file", str(work / "speech_shape"),
        "--train_shape_file", str(work / "text_shape"),
        "--token_type", "char", "--token_list", str(work / "token_list"),
        "--preprocessor", "av",
        "--preprocessor_conf", f"modality={conf.modality}",
        "--preprocessor_conf", f"crop_size={conf.crop_size}",
        "--preprocessor_conf", f"babble_path={work / 'babble.wav'}",
        "--preprocessor_conf", f"masks_per_second={conf.masks_per_second}",
        "--batch_type", "sorted", "--batch_size", str(conf.batch_size),
        "--num_workers", str(workers), "--seed", str(conf.seed),
    ])


# ---------------------------------------------------------------- measuring
Measure = Callable[[int], int]  # round index -> frames produced


def build_measures(conf: PipelineConfig, data: Dict[str, Any]) -> Dict[str, Tuple[str, Measure]]:
    """Name -> (level, function of the round returning the frames it made)."""
    from espnet2.train.distributed_utils import DistributedOption

    from espnet_msrs.tasks.asr import MSRSASRTask
    from espnet_msrs.video.io import read_video

    work = Path(data["work"])
    scp = {fmt: work / fmt / "video.scp" for fmt in ("mp4", "npy")}
    paths = {fmt: list(read_kv(scp[fmt]).values()) for fmt in scp}
    keys = data["keys"]
    register_swscale_data_type()

    def files(reader: Callable[[str], Any], fmt: str) -> Measure:
        def run(_: int) -> int:
            n = 0
            for path in paths[fmt]:
                out = reader(path)
                n += out if isinstance(out, int) else len(out)
            return n
        return run

    def dataset(fmt: str, video_type: str) -> Measure:
        args = task_args(conf, work, scp[fmt], video_type, 0)
        options = MSRSASRTask.build_iter_options(args, DistributedOption(), "train")
        ds = MSRSASRTask.build_dataset(args, options, set(keys))

        def run(r: int) -> int:
            np.random.seed(conf.seed + r)  # as ESPnet seeds a worker (seed + epoch)
            return sum(len(ds[key][1]["speech"]) for key in keys)
        return run

    def inference(fmt: str) -> Measure:
        # as espnet2.bin.asr_inference builds it (one process, batch size 1)
        args = task_args(conf, work, scp[fmt], "video", 0)
        data = [(str(work / "wav.scp"), "speech", "sound"), (str(scp[fmt]), "video", "video")]

        def run(_: int) -> int:
            loader = MSRSASRTask.build_streaming_iterator(
                data, dtype="float32", batch_size=1, num_workers=0,
                preprocess_fn=MSRSASRTask.build_preprocess_fn(args, False),
                collate_fn=MSRSASRTask.build_collate_fn(args, False),
                allow_variable_data_keys=True, inference=True)
            return sum(int(batch["speech_lengths"].sum()) for _, batch in loader)
        return run

    def iterator(fmt: str, workers: int, video_type: str = "video") -> Measure:
        args = task_args(conf, work, scp[fmt], video_type, workers)
        factory = MSRSASRTask.build_iter_factory(args, DistributedOption(), "train")

        def run(r: int) -> int:
            return sum(int(batch["speech_lengths"].sum())
                       for _, batch in factory.build_iter(r + 1))
        return run

    measures: Dict[str, Tuple[str, Measure]] = {
        "npy read_video": ("decode", files(lambda p: read_video(p), "npy")),
        "mp4 read_video": ("decode", files(lambda p: read_video(p), "mp4")),
        "mp4 swscale (before)": ("decode", files(decode_swscale, "mp4")),
        "mp4 decode only": ("decode", files(decode_only, "mp4")),
        "mp4 decode only, threads AUTO": (
            "decode", files(lambda p: decode_only(p, "AUTO"), "mp4")),
        "npy dataset": ("dataset", dataset("npy", "video")),
        "mp4 dataset": ("dataset", dataset("mp4", "video")),
        "mp4 swscale dataset (before)": ("dataset", dataset("mp4", SWSCALE_DATA_TYPE)),
        "npy inference": ("inference", inference("npy")),
        "mp4 inference": ("inference", inference("mp4")),
    }
    for workers in sorted({1, conf.workers}):
        for fmt in ("npy", "mp4"):
            measures[f"{fmt} iterator, {workers} worker{'s' * (workers > 1)}"] = (
                "iterator", iterator(fmt, workers))
    measures["mp4 swscale iterator, 1 worker (before)"] = (
        "iterator", iterator("mp4", 1, SWSCALE_DATA_TYPE))
    return measures


def run_pipeline(conf: PipelineConfig, work: Path) -> Dict[str, Any]:
    """Prepare the data, then time every measure round-robin.

    Returns:
        The JSON-ready result (``config``, ``data``, ``machine``,
        ``measures``, ``ratios``).
    """
    if conf.workers < 1 or conf.repeats < 1 or conf.warmup < 0 or conf.num_utts < 1:
        raise ValueError("--workers, --repeats and --num_utts must be >= 1, "
                         "--warmup >= 0")
    load_start = common.load_average()
    data = prepare_data(conf, work)
    measures = build_measures(conf, data)
    names = list(measures)
    samples: Dict[str, Dict[str, List[float]]] = {
        n: {"wall": [], "cpu": [], "frames": []} for n in names}
    for r in range(conf.warmup + conf.repeats):
        for name in common.rotated(names, r):
            clock = common.CPUClock()
            frames = measures[name][1](r)
            t = clock.elapsed()
            if r >= conf.warmup:
                samples[name]["wall"].append(t["wall"])
                samples[name]["cpu"].append(t["cpu"] + t["children_cpu"])
                samples[name]["frames"].append(frames)
        logger.info(f"data_pipeline: round={r + 1}/{conf.warmup + conf.repeats} "
                    f"warmup={r < conf.warmup}")
    results = {}
    for name in names:
        s = samples[name]
        if len(set(s["frames"])) != 1:
            raise RuntimeError(f"{name}: frames differ between rounds {s['frames']}")
        frames = s["frames"][0]
        results[name] = {
            "level": measures[name][0],
            "frames": frames,
            "wall": common.summary(s["wall"]),
            "cpu": common.summary(s["cpu"]),
            "fps_per_core": frames / common.summary(s["cpu"])["median"],
            "fps_wall": frames / common.summary(s["wall"])["median"],
        }
        results[name]["realtime_per_core"] = results[name]["fps_per_core"] / FPS
        results[name]["realtime_wall"] = results[name]["fps_wall"] / FPS
    machine = common.machine_info(load_average_start=load_start)
    data = {k: v for k, v in data.items() if k != "keys"}
    return {"config": {**dataclasses.asdict(conf), "data_dir": str(conf.data_dir)},
            "data": data, "machine": machine, "measures": results,
            "ratios": ratios(results, samples, conf.workers)}


def ratios(results: Dict[str, Dict], samples: Dict[str, Dict[str, List[float]]],
           workers: int) -> Dict[str, Dict[str, float]]:
    """Per-round ratios of frames/s (median and quartiles) that the README quotes."""
    def rate(name: str, clock: str) -> List[float]:
        frames = results[name]["frames"]
        return [frames / t for t in samples[name][clock]]

    pairs = {
        "mp4 vs npy, decode": ("mp4 read_video", "npy read_video", "cpu"),
        "mp4 vs swscale (before), decode": ("mp4 read_video", "mp4 swscale (before)", "cpu"),
        "mp4 vs PyAV decode only": ("mp4 read_video", "mp4 decode only", "cpu"),
        "decode threads AUTO vs none": (
            "mp4 decode only, threads AUTO", "mp4 decode only", "cpu"),
        "decode threads AUTO vs none, wall": (
            "mp4 decode only, threads AUTO", "mp4 decode only", "wall"),
        "mp4 vs npy, dataset": ("mp4 dataset", "npy dataset", "cpu"),
        "mp4 vs npy, inference": ("mp4 inference", "npy inference", "cpu"),
        "mp4 vs swscale (before), dataset": (
            "mp4 dataset", "mp4 swscale dataset (before)", "cpu"),
        "mp4 vs npy, iterator 1 worker": ("mp4 iterator, 1 worker", "npy iterator, 1 worker", "cpu"),
        "mp4 vs swscale (before), iterator 1 worker": (
            "mp4 iterator, 1 worker", "mp4 swscale iterator, 1 worker (before)", "cpu"),
    }
    if workers > 1:
        many = f"{workers} workers"
        pairs[f"mp4 vs npy, iterator {many}"] = (
            f"mp4 iterator, {many}", f"npy iterator, {many}", "cpu")
        pairs[f"{many} vs 1, mp4 iterator, wall"] = (
            f"mp4 iterator, {many}", "mp4 iterator, 1 worker", "wall")
        pairs[f"{many} vs 1, npy iterator, wall"] = (
            f"npy iterator, {many}", "npy iterator, 1 worker", "wall")
    return {label: {"of": a, "to": b, "clock": clock,
                    **common.paired_ratio(rate(a, clock), rate(b, clock))}
            for label, (a, b, clock) in pairs.items()}


# ------------------------------------------------------- the paper estimate
def forward_flops_per_frame(config: Path, frames: int, tokens: int) -> Dict[str, Any]:
    """Forward FLOPs per video frame of a training config (FlopCounterMode).

    Builds the config's model (random initialisation, token list of
    ``vocab_size`` dummy tokens as in the papers: 5000 unless the config's
    ``token_list`` says otherwise) and counts one forward pass of one
    utterance of ``frames`` frames and ``tokens`` tokens without gradients.
    """
    import yaml

    from espnet_msrs.asr.frontend.av_resnet_frontend import packed_dim
    from espnet_msrs.tasks.asr import MSRSASRTask

    conf = yaml.safe_load(Path(config).read_text())
    args = MSRSASRTask.get_parser().parse_args(["--config", str(config)])
    args.token_list = ["<blank>", "<unk>"] + [f"t{i}" for i in range(4997)] + ["<sos/eos>"]
    front = dict(modality="av", crop_size=88, hop_length=640)
    front.update({k: v for k, v in (conf.get("frontend_conf") or {}).items() if k in front})
    torch.manual_seed(0)
    model = MSRSASRTask.build_model(args).eval()
    params = sum(p.numel() for p in model.parameters())
    dim = packed_dim(front["modality"], front["crop_size"], front["hop_length"])
    speech = torch.randn(1, frames, dim)
    text = torch.randint(2, 4998, (1, tokens))
    counter = common.flop_counter()
    with torch.no_grad(), counter:
        model(speech=speech, speech_lengths=torch.tensor([frames]),
              text=text, text_lengths=torch.tensor([tokens]))
    total = counter.get_total_flops()
    del model
    return {"config": str(config), "modality": front["modality"], "params": params,
            "frames": frames, "tokens": tokens,
            "forward_flops_per_frame": total / frames}


def paper_estimate(result: Dict[str, Any], configs: Sequence[Path], gpu_tflops: float,
                   frames: int, tokens: int) -> Dict[str, Any]:
    """Loader cores one GPU needs for each paper config (see the module docstring)."""
    per_core = {fmt: result["measures"][f"{fmt} iterator, 1 worker"]["fps_per_core"]
                for fmt in ("mp4", "npy")}
    per_core["mp4 swscale (before)"] = result["measures"][
        "mp4 swscale iterator, 1 worker (before)"]["fps_per_core"]
    rows = []
    for config in configs:
        row = forward_flops_per_frame(Path(config), frames, tokens)
        train = 3.0 * row["forward_flops_per_frame"]
        gpu_fps = gpu_tflops * 1e12 / train
        row.update(train_flops_per_frame=train, gpu_fps=gpu_fps,
                   gpu_realtime=gpu_fps / FPS,
                   cores_per_gpu={k: gpu_fps / v for k, v in per_core.items()})
        rows.append(row)
        logger.info(f"data_pipeline: paper config={config} "
                    f"train_gflops_per_frame={train / 1e9:.2f} gpu_fps={gpu_fps:.0f}")
    return {"gpu_tflops": gpu_tflops, "loader_fps_per_core": per_core,
            "assumption": "training step = 3x forward FLOPs (FlopCounterMode); "
                          f"GPU sustains {gpu_tflops} TFLOP/s; loader cores scale "
                          "linearly (one DataLoader worker per core)",
            "configs": rows}


# ------------------------------------------------------------------- output
def format_result(result: Dict[str, Any]) -> str:
    """The table and the ratios as plain text."""
    data = result["data"]
    lines = [common.machine_line(result["machine"]),
             f"data: {data['utts']} utterances, {data['frames']} frames "
             f"({data['seconds']:.0f} s at 25 fps); {result['config']['repeats']} "
             f"timed rounds; per core = frames / CPU seconds of the process and "
             f"its DataLoader workers",
             f"{'measure':<40} {'level':<9} {'frames/s/core':>13} {'x RT/core':>9} "
             f"{'frames/s wall':>13} {'x RT wall':>9}"]
    for name, m in result["measures"].items():
        lines.append(f"{name:<40} {m['level']:<9} {m['fps_per_core']:>13.0f} "
                     f"{m['realtime_per_core']:>9.0f} {m['fps_wall']:>13.0f} "
                     f"{m['realtime_wall']:>9.0f}")
    lines.append("ratios of frames/s, median of per-round ratios [p25-p75]:")
    for label, r in result["ratios"].items():
        lines.append(f"  {label:<42} {r['median']:.2f} [{r['p25']:.2f}-{r['p75']:.2f}] "
                     f"({r['clock']})")
    estimate = result.get("paper_estimate")
    if estimate:
        lines.append(f"paper estimate ({estimate['assumption']}):")
        for row in estimate["configs"]:
            cores = ", ".join(f"{k} {v:.1f}" for k, v in row["cores_per_gpu"].items())
            lines.append(
                f"  {Path(row['config']).name}: {row['params'] / 1e6:.0f} M params, "
                f"{row['train_flops_per_frame'] / 1e9:.1f} GFLOP/frame to train, GPU "
                f"{row['gpu_fps']:.0f} frames/s ({row['gpu_realtime']:.0f}x real "
                f"time) -> loader cores per GPU: {cores}")
    return "\n".join(lines)


def get_parser() -> argparse.ArgumentParser:
    d = PipelineConfig(data_dir=Path("."))
    p = argparse.ArgumentParser(
        description="frames/s of training batches from npy vs mp4 mouth ROIs "
        "(decode, ESPnet dataset + av preprocessor, ESPnet iterator with 1 and N "
        "workers), interleaved in one run")
    p.add_argument("--data_dir", type=Path, required=True,
                   help="Kaldi-style dir with video.scp (mp4 or npy), wav.scp, text")
    p.add_argument("--work_dir", type=Path, default=None,
                   help="where the copies in both formats go (default: a temp dir)")
    p.add_argument("--num_utts", type=int, default=d.num_utts)
    p.add_argument("--workers", type=int, default=d.workers,
                   help="N of the N-worker iterator rows (1 is always measured)")
    p.add_argument("--batch_size", type=int, default=d.batch_size)
    p.add_argument("--repeats", type=int, default=d.repeats, help="timed rounds")
    p.add_argument("--warmup", type=int, default=d.warmup, help="untimed rounds")
    p.add_argument("--modality", default=d.modality, choices=["video", "av"])
    p.add_argument("--crop_size", type=int, default=d.crop_size)
    p.add_argument("--masks_per_second", type=float, default=d.masks_per_second)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--paper_configs", default="",
                   help="comma-separated training configs for the cores-per-GPU estimate")
    p.add_argument("--gpu_tflops", type=float, default=100.0,
                   help="sustained training TFLOP/s of one GPU for the estimate "
                   "(100 = 32%% of an A100's bf16 peak)")
    p.add_argument("--paper_frames", type=int, default=150,
                   help="frames of the utterance the FLOPs are counted on (6 s)")
    p.add_argument("--paper_tokens", type=int, default=30)
    p.add_argument("--out", type=Path, default=Path("exp/benchmark/data_pipeline.json"))
    return p


@contextlib.contextmanager
def _work_dir(path: Optional[Path]) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
    else:
        with tempfile.TemporaryDirectory(prefix="data_pipeline.") as tmp:
            yield Path(tmp)


def main(cmd: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Command-line entry point; returns the result written to ``--out``."""
    args = parse_tool_args(get_parser(), cmd)
    import espnet_msrs

    espnet_msrs.register()
    conf = PipelineConfig(**{f.name: getattr(args, f.name)
                             for f in dataclasses.fields(PipelineConfig)})
    with _work_dir(args.work_dir) as work:
        result = run_pipeline(conf, work)
    configs = [c.strip() for c in args.paper_configs.split(",") if c.strip()]
    if configs:
        result["paper_estimate"] = paper_estimate(
            result, configs, args.gpu_tflops, args.paper_frames, args.paper_tokens)
    return common.write_result("data_pipeline", args.out, result, format_result)


if __name__ == "__main__":
    main()
