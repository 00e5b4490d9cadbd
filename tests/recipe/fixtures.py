"""Tiny corpora in the exact on-disk layouts of LRS3, VoxCeleb2 and LibriSpeech.

The real corpora cannot be downloaded here; these generators write a few
short files in the same directory layout and file formats, so the recipes'
``local/data.sh`` run on them unchanged:

* :func:`make_lrs3` — ``LRS3/{pretrain,trainval,test}/<spk>/<id>.{mp4,txt}``
  (H.264 colour face video 25 fps + AAC 16 kHz audio; ``Text:``/``Conf:``
  header and a ``WORD START END ASDSCORE`` table) and a landmark tree
  ``LRS3_landmarks/<subset>/<spk>/<id>.pkl`` (pickled list of per-frame
  (68, 2) arrays or None, as the public landmark release).
* :func:`make_voxceleb2` — ``VoxCeleb2/dev/mp4/<id>/<video>/<n>.mp4``, an
  English id list, a labels CSV and a landmark tree mirroring ``dev/mp4``.
* :func:`make_librispeech` — ``LibriSpeech/<set>/<spk>/<chapter>/`` with
  ``<spk>-<chapter>-<nnnn>.flac`` and ``<spk>-<chapter>.trans.txt``.

Faces are rendered by ``espnet_msrs.synth.face`` (so the landmarks are exact
and mouth crops can be checked); audio is noise-like. Each generator returns
what a test needs to check the data directories (ids, texts, paths).
"""

import csv
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import av
import numpy as np
import soundfile

from espnet_msrs.synth.face import (
    FaceAppearance,
    FaceRenderer,
    head_motion,
    mouth_trajectory,
)

FPS = 25
RATE = 16000
HOP = RATE // FPS
WORDS = ["PLACE", "BLUE", "AT", "NOW", "RED", "SOON", "WITH", "GREEN", "BY", "SET"]
_PHONES = ["p", "a", "m", "i", "u", "o", "f", "t", "E", "s", "l", "r"]


# ------------------------------------------------------------------ media
def render_face(
    rng: np.random.Generator, num_frames: int, size: int = 96
) -> Tuple[np.ndarray, np.ndarray]:
    """A talking synthetic face: (T, size, size) uint8 and (T, 68, 2) landmarks."""
    renderer = FaceRenderer(FaceAppearance.sample(rng), frame_size=size)
    t, phones = 0.0, []
    while t < num_frames / FPS:
        d = rng.uniform(0.06, 0.16)
        phones.append((str(rng.choice(_PHONES)), t, t + d))
        t += d
    mouth = mouth_trajectory(phones, num_frames)
    return renderer.render(mouth, head_motion(num_frames, rng))


def write_av_mp4(
    path: Path,
    frames: np.ndarray,
    audio: Optional[np.ndarray],
    rate: int = RATE,
) -> Path:
    """Write grey frames (T, H, W) as colour H.264 25 fps + mono AAC audio."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height = frames.shape[2], frames.shape[1]
        video.pix_fmt = "yuv420p"
        video.options = {"crf": "23", "preset": "ultrafast"}
        if audio is not None:
            sound = container.add_stream("aac", rate=rate)
            sound.layout = "mono"
        for i, grey in enumerate(frames):
            rgb = np.repeat(grey[:, :, None], 3, axis=2)
            frame = av.VideoFrame.from_ndarray(rgb, "rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if audio is not None:
            for k in range(0, len(audio), 1024):
                chunk = np.ascontiguousarray(audio[None, k : k + 1024], np.float32)
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                frame.sample_rate = rate
                frame.pts = k
                container.mux(sound.encode(frame))
            container.mux(sound.encode(None))
    return path


def noise_audio(rng: np.random.Generator, num_samples: int) -> np.ndarray:
    """Band-limited noise with a tone (float32, |x| < 0.5)."""
    t = np.arange(num_samples) / RATE
    x = 0.2 * np.sin(2 * np.pi * rng.uniform(120, 300) * t)
    x += 0.05 * rng.standard_normal(num_samples)
    return x.astype(np.float32)


def save_landmark_pickle(path: Path, landmarks: np.ndarray, missing=()) -> Path:
    """Per-frame list of (68, 2) float arrays, None for frames in ``missing``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = [
        None if t in set(missing) else np.asarray(lm, dtype=np.float64)
        for t, lm in enumerate(landmarks)
    ]
    with open(path, "wb") as f:
        pickle.dump(entries, f)
    return path


# ------------------------------------------------------------------- LRS3
@dataclass
class Clip:
    """What a fixture clip should become in the data directories."""

    uid: str
    spk: str
    subset: str
    text: str
    mp4: Path
    num_frames: int
    landmark: Optional[Path] = None
    segments: List[Tuple[str, str, int, int]] = field(default_factory=list)
    # (uid, text, first frame, end frame) of each expected segment


def _words_timeline(
    rng: np.random.Generator, words: Sequence[str], duration: float
) -> List[Tuple[str, float, float]]:
    """Evenly spread word timings with small gaps inside ``duration``."""
    step = duration / len(words)
    out = []
    for i, w in enumerate(words):
        start = round(i * step + 0.02, 2)
        end = round((i + 1) * step - 0.02, 2)
        out.append((w, start, end))
    return out


def _lrs3_txt(text: str, timeline, pretrain: bool) -> str:
    lines = [f"Text:  {text}", "Conf:  3"]
    if pretrain:
        lines.append("Ref:   fixture")
    lines += ["", "WORD START END ASDSCORE"]
    lines += [f"{w} {s:.2f} {e:.2f} {4.5:.1f}" for w, s, e in timeline]
    return "\n".join(lines) + "\n"


def make_lrs3(
    root: Path,
    seed: int = 0,
    spk_per_subset: int = 2,
    clips_per_spk: int = 2,
    sec: Tuple[float, float] = (0.8, 1.2),
    long_sec: float = 3.2,
    max_sec: float = 1.5,
    size: int = 96,
    with_problems: bool = False,
) -> Dict[str, object]:
    """Write ``root/LRS3`` and ``root/LRS3_landmarks`` (see module docstring).

    Every subset has ``spk_per_subset`` speakers × ``clips_per_spk`` clips of
    ``sec`` seconds; the first pretrain clip lasts ``long_sec`` seconds and
    is expected to be cut into segments of at most ``max_sec`` seconds.
    Speaker ids contain ``-`` and ``_`` as real YouTube ids do. Landmarks of
    frame 1 of every clip are None (a missed detection).

    ``with_problems`` adds a trainval clip without ``.txt``, one whose
    transcript is only ``{LG}`` and one test clip without landmarks.

    Returns:
        ``root``, ``landmarks`` (paths), ``clips`` (list of :class:`Clip`),
        ``problems`` (uids that must be reported), ``no_landmark`` (uids).
    """
    rng = np.random.default_rng(seed)
    lrs3 = root / "LRS3"
    lm_root = root / "LRS3_landmarks"
    clips: List[Clip] = []
    problems: List[str] = []
    no_landmark: List[str] = []
    for s_idx, subset in enumerate(("pretrain", "trainval", "test")):
        base = 0 if subset == "pretrain" else 50000
        for k in range(spk_per_subset):
            spk = f"{subset[:2]}S{k}-x_{s_idx}{k}Ab"
            for c in range(clips_per_spk):
                cid = f"{base + c + 1:05d}"
                long_clip = subset == "pretrain" and k == 0 and c == 0
                dur = long_sec if long_clip else rng.uniform(*sec)
                num_frames = int(round(dur * FPS))
                nwords = 7 if long_clip else int(rng.integers(2, 4))
                words = list(rng.choice(WORDS, nwords))
                text = " ".join(words)
                timeline = _words_timeline(rng, words, num_frames / FPS)
                frames, lms = render_face(rng, num_frames, size)
                audio = noise_audio(rng, num_frames * HOP)
                mp4 = write_av_mp4(lrs3 / subset / spk / f"{cid}.mp4", frames, audio)
                (mp4.with_suffix(".txt")).write_text(
                    _lrs3_txt(text, timeline, subset == "pretrain")
                )
                uid = f"{spk}_{cid}"
                landmark = None
                if not (with_problems and subset == "test" and k == 0 and c == 0):
                    landmark = save_landmark_pickle(
                        lm_root / subset / spk / f"{cid}.pkl", lms, missing=(1,)
                    )
                else:
                    no_landmark.append(uid)
                clip = Clip(uid, spk, subset, text, mp4, num_frames, landmark)
                if long_clip:
                    clip.segments = _expected_segments(uid, timeline, max_sec, num_frames)
                clips.append(clip)
    if with_problems:
        bad = lrs3 / "trainval" / "tvBroken"
        frames, _ = render_face(rng, 20, size)
        write_av_mp4(bad / "50001.mp4", frames, noise_audio(rng, 20 * HOP))
        problems.append("tvBroken_50001")  # no .txt
        write_av_mp4(bad / "50002.mp4", frames, noise_audio(rng, 20 * HOP))
        (bad / "50002.txt").write_text("Text:  {LG}\nConf:  2\n")
        problems.append("tvBroken_50002")  # empty transcript
    return {
        "root": lrs3,
        "landmarks": lm_root,
        "clips": clips,
        "problems": problems,
        "no_landmark": no_landmark,
    }


def _expected_segments(uid, timeline, max_sec, num_frames):
    """The segmentation rule of prepare_lrs3.py, written out independently."""
    out, cur = [], []
    for w, s, e in timeline:
        if cur and e - cur[0][1] > max_sec:
            out.append(cur)
            cur = []
        cur.append((w, s, e))
    out.append(cur)
    segs = []
    for k, seg in enumerate(out):
        f0 = int(np.floor(seg[0][1] * FPS))
        f1 = min(num_frames, int(np.ceil(seg[-1][2] * FPS)))
        segs.append((f"{uid}_{k:02d}", " ".join(w for w, _, _ in seg), f0, f1))
    return segs


# -------------------------------------------------------------- VoxCeleb2
def make_voxceleb2(
    root: Path,
    seed: int = 1,
    speakers: Sequence[str] = ("id00012", "id00419", "id09999"),
    videos_per_spk: int = 2,
    clips_per_video: int = 1,
    sec: Tuple[float, float] = (0.8, 1.2),
    size: int = 96,
) -> Dict[str, object]:
    """Write ``root/VoxCeleb2/dev/mp4/<id>/<video>/<n>.mp4`` and friends.

    The last speaker is "non-English": it is absent from the id list
    ``root/vox2_en.id`` (lines ``<id>/<video>/<n>``, the AV-HuBERT
    ``vox-en.id`` form). ``root/vox2_labels.csv`` holds
    ``dataset,rel_path,length,text`` rows for the English clips (rel_path
    relative to the VoxCeleb2 root). Landmarks: ``root/vox2_landmarks``
    mirroring ``dev/mp4`` (``<id>/<video>/<n>.pkl``).

    Returns:
        ``root``, ``id_list``, ``labels``, ``landmarks``, ``clips`` (all,
        :class:`Clip`), ``english`` (uids in the id list).
    """
    rng = np.random.default_rng(seed)
    vox = root / "VoxCeleb2"
    lm_root = root / "vox2_landmarks"
    clips: List[Clip] = []
    english: List[str] = []
    id_lines, rows = [], []
    for s_idx, spk in enumerate(speakers):
        for v in range(videos_per_spk):
            video = f"{s_idx}Yx-{v}_abcDE"
            for n in range(clips_per_video):
                name = f"{n + 1:05d}"
                num_frames = int(round(rng.uniform(*sec) * FPS))
                frames, lms = render_face(rng, num_frames, size)
                rel = Path("dev/mp4") / spk / video / f"{name}.mp4"
                mp4 = write_av_mp4(vox / rel, frames, noise_audio(rng, num_frames * HOP))
                lm = save_landmark_pickle(
                    lm_root / spk / video / f"{name}.pkl", lms, missing=(0,)
                )
                text = " ".join(rng.choice(WORDS, int(rng.integers(2, 4))))
                uid = f"{spk}_{video}_{name}"
                clips.append(Clip(uid, spk, "dev", text, mp4, num_frames, lm))
                if s_idx < len(speakers) - 1:
                    english.append(uid)
                    id_lines.append(f"{spk}/{video}/{name}")
                    rows.append(["vox2", str(rel), str(num_frames), text.lower()])
    (root / "vox2_en.id").write_text("\n".join(id_lines) + "\n")
    with open(root / "vox2_labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["dataset", "rel_path", "length", "text"])
        writer.writerows(rows)
    return {
        "root": vox,
        "id_list": root / "vox2_en.id",
        "labels": root / "vox2_labels.csv",
        "landmarks": lm_root,
        "clips": clips,
        "english": english,
    }


# ------------------------------------------------------------ LibriSpeech
LIBRI_SETS = (
    "train-clean-100",
    "train-clean-360",
    "train-other-500",
    "dev-clean",
    "dev-other",
    "test-clean",
    "test-other",
)


@dataclass
class LibriUtt:
    uid: str
    spk: str
    subset: str
    text: str
    flac: Path
    num_samples: int


def make_librispeech(
    root: Path,
    seed: int = 2,
    sets: Sequence[str] = LIBRI_SETS,
    spk_per_set: int = 1,
    utts_per_chapter: int = 2,
    sec: Tuple[float, float] = (0.5, 0.9),
) -> Dict[str, object]:
    """Write ``root/LibriSpeech/<set>/<spk>/<chapter>/`` flacs + trans.txt.

    Speaker ids are distinct across sets (as in LibriSpeech). Returns
    ``root`` and ``utts`` (list of :class:`LibriUtt`).
    """
    rng = np.random.default_rng(seed)
    libri = root / "LibriSpeech"
    utts: List[LibriUtt] = []
    for s_idx, subset in enumerate(sets):
        for k in range(spk_per_set):
            spk = str(100 + 37 * s_idx + k)
            chapter = str(1000 + 11 * s_idx + k)
            cdir = libri / subset / spk / chapter
            cdir.mkdir(parents=True, exist_ok=True)
            lines = []
            for n in range(utts_per_chapter):
                uid = f"{spk}-{chapter}-{n:04d}"
                num = int(rng.uniform(*sec) * RATE)
                flac = cdir / f"{uid}.flac"
                soundfile.write(flac, noise_audio(rng, num), RATE, format="FLAC")
                text = " ".join(rng.choice(WORDS, int(rng.integers(2, 5))))
                lines.append(f"{uid} {text}")
                utts.append(LibriUtt(uid, spk, subset, text, flac, num))
            (cdir / f"{spk}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    return {"root": libri, "utts": utts}


# ---------------------------------------------------------------- helpers
REPO = Path(__file__).resolve().parents[2]


def recipe_dir(corpus: str, task: str) -> Path:
    """``<repo>/egs2/<corpus>/<task>``."""
    return REPO / "egs2" / corpus / task


def load_recipe_module(corpus: str, task: str, name: str):
    """Import ``egs2/<corpus>/<task>/local/<name>.py`` as a module."""
    import importlib.util
    import sys

    path = recipe_dir(corpus, task) / "local" / f"{name}.py"
    key = f"_recipe_{corpus}_{task}_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def run_data_sh(corpus: str, task: str, env: Dict[str, str], *args: str):
    """Run ``local/data.sh`` from the recipe directory with corpus paths in
    ``env`` (the db.sh variables); returns the CompletedProcess (text)."""
    import os
    import subprocess

    full_env = dict(os.environ)
    for var in ("LRS3", "LRS3_LANDMARKS", "VOXCELEB2", "VOXCELEB2_EN_IDS",
                "VOXCELEB2_LABELS", "VOXCELEB2_LANDMARKS", "LIBRISPEECH"):
        full_env.pop(var, None)
    full_env.update({k: str(v) for k, v in env.items()})
    return subprocess.run(
        ["bash", "local/data.sh", *map(str, args)],
        cwd=recipe_dir(corpus, task),
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def read_table(path: Path) -> Dict[str, str]:
    """``<key> <value>`` lines of a Kaldi file."""
    out = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            key, _, value = line.partition(" ")
            out[key] = value
    return out


#: What a recipe run writes into its directory (never linked into a sandbox).
RECIPE_OUTPUTS = ("data", "dump", "exp", "downloads", "RESULTS.md")


def recipe_sandbox(corpus: str, task: str, root: Path) -> Path:
    """A runnable copy of ``egs2/<corpus>/<task>`` under ``root``.

    Every file of the recipe is a symlink to the repository's (run.sh,
    avsr.sh, path.sh, conf/, local/, …), outputs go to the copy; so a test
    runs the recipe exactly as a user does, without touching the
    repository's own ``data/``, ``dump/`` or ``exp/``.
    """
    src = recipe_dir(corpus, task)
    dst = Path(root) / "egs2" / corpus / task
    dst.mkdir(parents=True)
    for entry in sorted(src.iterdir()):
        if entry.name not in RECIPE_OUTPUTS:
            (dst / entry.name).symlink_to(entry)
    return dst


#: The micro demo corpus (2 speakers x 8 sentences: train 10, valid 2, test 4)
#: and the options of the synthgrid recipe that make it (stages 1-7).
MICRO_DATA_OPTS = "--num_speakers 2 --utts_per_speaker 8 --num_valid 1 --num_test 2 --seed 0 --nj 2"
MICRO_OPTS = ("--local_data_opts", MICRO_DATA_OPTS, "--noise_num_utts", "4")


def prepare_micro_data(root: Path) -> Dict[str, object]:
    """Stages 1-7 of ``egs2/synthgrid/avsr1`` on the micro corpus, in a
    sandbox under ``root`` (``./run.sh --stop_stage 7``).

    Returns:
        ``recipe`` (the sandbox) and ``proc`` (the run's CompletedProcess).
    """
    recipe = recipe_sandbox("synthgrid", "avsr1", root)
    proc = run_recipe(recipe, *MICRO_OPTS, "--stage", "1", "--stop_stage", "7")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {"recipe": recipe, "proc": proc}


def micro_recipe(micro_data: Dict[str, object], root: Path) -> Path:
    """A sandbox of the synthgrid recipe under ``root`` holding a copy of the
    prepared micro data (``data/``, ``dump/``, ``downloads/``, the stats of
    stage 7, with their times, so every marker holds): stages 1-7 are done
    already there, a test runs from stage 8 or changes what it likes."""
    import shutil

    src = Path(micro_data["recipe"])
    recipe = recipe_sandbox("synthgrid", "avsr1", root)
    for name in ("data", "dump", "downloads"):
        shutil.copytree(src / name, recipe / name, symlinks=True)
    for stats in (src / "exp").glob("asr_stats_*"):
        shutil.copytree(stats, recipe / "exp" / stats.name, symlinks=True)
    return recipe


def run_recipe(recipe: Path, *args: str, timeout: int = 1800, env=None):
    """``./run.sh args`` in ``recipe`` with this interpreter's environment."""
    import os
    import subprocess
    import sys

    full_env = dict(os.environ, OMP_NUM_THREADS="1")
    full_env["PATH"] = f"{Path(sys.executable).parent}:{full_env['PATH']}"
    full_env.update(env or {})
    return subprocess.run(
        ["./run.sh", *map(str, args)],
        cwd=recipe,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def stage9_recipe(root: Path) -> Path:
    """A recipe directory ready for stage 9 of ``avsr.sh`` on the tiny corpus.

    ``data/`` and ``dump/raw/`` of ``tests.helpers.tiny_corpus`` (train 4,
    valid 2, test 2), ESPnet shape files of the audio ``av`` packing
    ("uid T,D" at 25 fps) in ``exp/stats`` with a stage-7 marker, a char token
    list, ``avsr.sh`` linked and a ``path.sh`` putting this interpreter first.

    Returns:
        The stats directory (for ``--stats_dir``).
    """
    import math
    import shutil
    import sys

    from espnet_msrs.asr.frontend.av_resnet_frontend import packed_dim
    from tests.helpers.tiny_corpus import make_tiny_corpus

    root = Path(root)
    make_tiny_corpus(root, sets={"train": 4, "valid": 2, "test": 2})
    (root / "avsr.sh").symlink_to(REPO / "egs2" / "TEMPLATE" / "avsr1" / "avsr.sh")
    (root / "path.sh").write_text(f'export PATH="{Path(sys.executable).parent}:$PATH"\n')
    raw, stats = root / "dump" / "raw", root / "exp" / "stats"
    dim = packed_dim("audio", 88, 640)
    for name in ("train", "valid"):
        shutil.copytree(root / "data" / name, raw / name)
        (stats / name).mkdir(parents=True)
        lines = [f"{u} {math.ceil(soundfile.info(p).frames / 640)},{dim}" for u, p in
                 (line.split() for line in (raw / name / "wav.scp").read_text().splitlines())]
        (stats / name / "speech_shape").write_text("\n".join(lines) + "\n")
    (stats / ".done").write_text("stats\n")
    token_dir = root / "data" / "token_list" / "char"
    token_dir.mkdir(parents=True)
    shutil.copy(root / "tokens.txt", token_dir / "tokens.txt")
    return stats
