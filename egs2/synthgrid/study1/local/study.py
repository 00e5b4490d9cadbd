#!/usr/bin/env python3
"""The CPU-scale study of the MSRS and LR-SMS claims (egs2/synthgrid/study1).

A *cell* is one run of the recipe (``./run.sh --stage 8 --stop_stage 12
--tag <tag> ...``: MSRS mask search if any, (re)training, averaging,
decoding, scoring) for one row of a table, one depth and one seed. A *table*
is a list of cells plus a report that reads only their artifacts
(``exp/<tag>/RESULTS.md``'s sources: ``decode_*/test/score/result.json``,
``mask_search/sparsity_report.json``, ``train/train.log``, the averaged
model) and writes ``results/<table>.{json,md}`` and ``figures/*.png``;
``assemble`` joins the tables into ``STUDY.md``. The protocol (definitions,
verdict rules) is README.md; this file implements it.

Commands (run from anywhere; ``local/<table>.sh`` wrap ``run`` + ``report``
+ ``assemble``)::

    python local/study.py blind                  # WER_blind of the protocol
    python local/study.py plan table1            # the cells of a table
    python local/study.py run table1 [--jobs 2]  # idempotent, resumable
    python local/study.py report table1
    python local/study.py assemble

Cells shared by several tables (e.g. the dense VSR runs of Table 1 that
Table 4 also shows) have one tag and run once. ``run`` is idempotent: a cell
whose recorded command finished is skipped, and the recipe's own stage
markers skip finished stages of an interrupted cell.
"""

import argparse
import datetime
import json
import logging
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

logger = logging.getLogger("study")

# The recipe directory this script is in, symlinks kept (a sandbox copy of the
# recipe links local/ to the repository's and keeps its own outputs).
STUDY_DIR = Path(os.path.abspath(__file__)).parents[1]
REPO = Path(__file__).resolve().parents[4]  # the repository (code revision, bench/)

# ------------------------------------------------------------------ protocol
# The definitions of README.md ("Definitions"); changing them after a cell
# has produced a number breaks the protocol.
SEEDS = (1, 2)
BLIND_MARGIN = 10.0  # a run trains iff WER < WER_blind - BLIND_MARGIN
PARITY_MIN_TOL = 1.0  # WER points, parity tolerance floor
TEST_SET = "test"
GRAD_KEY = "grad_norm_enc0_ffn"
GRAD_EPOCHS = (2, 3)  # g(run) = median over these epochs' logged intervals

# Sizes fixed after the timing pilot (README "Budget and depths").
VSR_DEPTHS = (2, 12)  # encoder blocks of the Table 1 sweep; decoder = max(1, D // 2)
DENSE_ONLY_DEPTHS = (6,)  # extra depths of the sweep with the Dense row only
T4_DEPTH = 12  # Table 4 and the λ sweep: the deepest depth of the sweep
FRONTEND_SOURCE_DEPTH = 2  # Table 4 "Frontend": the dense VSR model of this depth
LAMBDAS = (3e-8, 3e-7, 3e-6, 3e-5)  # λ sweep; 3e-7 = the demo's λ (3e-9 dropped: README
# "Amendments", 2026-12-02, budget)
LR_DEPTH = 6  # encoder blocks of the LR-SMS models (decoder = LR_DEPTH // 2)
BASELINE_INTERVAL = 12  # mask-update interval (optimizer steps) of SET/RigL/GMP/CHASE

CONFIGS = {
    "video": ("conf/tuning/train_vsr.yaml", "conf/tuning/search_vsr.yaml"),
    "audio": ("conf/tuning/train_asr.yaml", None),
    "av": ("conf/tuning/train_avsr.yaml", None),
}
MODALITY_NAME = {"video": "vsr", "audio": "asr", "av": "avsr"}

TABLES = ("table1", "table4", "fig2", "lrsms_asr", "lrsms_avsr")
TABLE_TITLES = {
    "table1": "MSRS Table 1 and Fig. 1: VSR from random initialisation, by depth",
    "table4": "MSRS Table 4 and Fig. 3: sparse training methods at ~40 % sparsity",
    "fig2": "MSRS Fig. 2: the sparsity penalty λ",
    "lrsms_asr": "LR-SMS Tables I–II, Figs. 3–4: low-rank ASR from scratch",
    "lrsms_avsr": "LR-SMS Table III: low-rank AVSR from scratch",
}


# --------------------------------------------------------------------- cells
@dataclass(frozen=True)
class Cell:
    """One recipe run: a row of a table at one depth and one seed.

    Attributes:
        tag: Experiment name (``exp/<tag>``), unique per cell.
        row: Row label in the tables.
        modality: ``video`` | ``audio`` | ``av``.
        method: ``--method`` of the recipe.
        seed: ESPnet ``--seed``.
        depth: Encoder blocks (decoder: ``depth // 2``, at least 1).
        retrain_mode: ``--retrain_mode`` (MSRS only).
        train_args: Extra training options of both training stages.
        search_args: Extra options of the mask search only.
        search_from: Tag whose mask search this cell reuses (symlinked).
        init_from: Tag whose averaged model's frontend initialises this cell.
        theta0: θ0 column (``Random`` | ``Frontend``).
        requires: Name of a code feature the cell needs (see FEATURES).
        run_args: Extra options of run.sh for this cell.
    """

    tag: str
    row: str
    modality: str
    method: str
    seed: int
    depth: int
    retrain_mode: str = "sparse"
    train_args: Tuple[str, ...] = ()
    search_args: Tuple[str, ...] = ()
    search_from: Optional[str] = None
    init_from: Optional[str] = None
    theta0: str = "Random"
    requires: Optional[str] = None
    run_args: Tuple[str, ...] = ()

    @property
    def has_search(self) -> bool:
        return self.method == "msrs" and self.search_from is None

    @property
    def deps(self) -> Tuple[str, ...]:
        return tuple(t for t in (self.search_from, self.init_from) if t)


def depth_args(depth: int) -> Tuple[str, ...]:
    return ("--encoder_conf", f"num_blocks={depth}",
            "--decoder_conf", f"num_blocks={max(1, depth // 2)}")


LAYER_SCALE_ARGS = ("--encoder_conf", "layer_scale=true", "--decoder_conf", "layer_scale=true")


def _lam_name(lam: float) -> str:
    return f"{lam:.0e}".replace("e-0", "e-").replace("+0", "")


def vsr_cell(variant: str, depth: int, seed: int) -> Cell:
    """The VSR cells of Table 1, Fig. 1, Fig. 2 and Table 4 (one naming scheme)."""
    base = ("--seed", str(seed)) + depth_args(depth)
    tag = f"vsr_d{depth}_{variant}_s{seed}"
    own = f"vsr_d{depth}_msrs_s{seed}"  # the MSRS search of this depth and seed
    common = dict(tag=tag, modality="video", seed=seed, depth=depth)
    if variant == "dense":
        return Cell(row="Dense", method="dense", train_args=base, **common)
    if variant == "ls":
        return Cell(row="LayerScale", method="layerscale", train_args=base + LAYER_SCALE_ARGS,
                    **common)
    if variant == "msrs":
        return Cell(row="MSRS → sparse", method="msrs", retrain_mode="sparse",
                    train_args=base, **common)
    if variant == "msrsdense":
        return Cell(row="MSRS → dense", method="msrs", retrain_mode="dense",
                    train_args=base, search_from=own, **common)
    if variant == "msrsgm":
        return Cell(row="Dense with MSRS masks", method="msrs", retrain_mode="grad_masked",
                    train_args=base, search_from=own, **common)
    if variant == "msrsls":
        return Cell(row="MSRS + LayerScale", method="msrs", retrain_mode="sparse",
                    train_args=base + LAYER_SCALE_ARGS, **common)
    match = re.fullmatch(r"lam(.+)", variant)
    if match:
        lam = float(match.group(1))
        return Cell(row=f"λ = {_lam_name(lam)}", method="msrs", retrain_mode="sparse",
                    train_args=base, search_args=("--msrs_conf", f"mask_penalty={lam}"),
                    **common)
    source = f"vsr_d{FRONTEND_SOURCE_DEPTH}_dense_s{seed}"
    match = re.fullmatch(r"(fe_)?(set|rigl|gmp|chase)", variant)
    if match:
        frontend, method = bool(match.group(1)), match.group(2)
        options = [f"update_interval={BASELINE_INTERVAL}"]
        if method == "chase":
            options.append(f"channel_interval={BASELINE_INTERVAL}")
        args = base + tuple(a for o in options for a in ("--msrs_conf", o))
        return Cell(row=method.upper().replace("RIGL", "RigL"), method=method,
                    train_args=args, init_from=source if frontend else None,
                    theta0="Frontend" if frontend else "Random", requires="sparse_methods",
                    run_args=("--nbest_average", "1"), **common)
    if variant == "fe_msrs":
        return Cell(row="MSRS", method="msrs", retrain_mode="sparse", train_args=base,
                    init_from=source, theta0="Frontend", **common)
    raise ValueError(f"unknown VSR cell variant {variant!r}")


#: LR-SMS rows: name -> (row label, encoder/decoder conf overrides).
LR_ROWS = {
    "full": ("Full rank", {}),
    "a025": ("MHSA & FFN, α = 0.25", {"mhsa_linear": "lowrank", "mhsa_alpha": 0.25,
                                        "ffn_linear": "lowrank", "ffn_alpha": 0.25}),
    "a012": ("MHSA & FFN, α = 0.12", {"mhsa_linear": "lowrank", "mhsa_alpha": 0.12,
                                        "ffn_linear": "lowrank", "ffn_alpha": 0.12}),
    "mhsa012": ("MHSA only, α = 0.12", {"mhsa_linear": "lowrank", "mhsa_alpha": 0.12}),
    "ffn025": ("FFN only, α = 0.25", {"ffn_linear": "lowrank", "ffn_alpha": 0.25}),
    "linear": ("Linear MHSA [0.1, 0.2], FFN [0.2, 0.4]",
               {"mhsa_linear": "lowrank", "mhsa_alpha": [0.1, 0.2],
                "ffn_linear": "lowrank", "ffn_alpha": [0.2, 0.4]}),
    "ffn050": ("FFN only, α = 0.5", {"ffn_linear": "lowrank", "ffn_alpha": 0.5}),
}
#: The benchmark variant (bench/train_step.py) of each LR-SMS row.
LR_BENCH_VARIANT = {"full": "dense", "a025": "lr_all_a025", "a012": "lr_all_a012",
                    "mhsa012": "lr_mhsa_a012", "ffn025": "lr_ffn_a025",
                    "linear": "lr_sms_m010-020_f020-040"}


def _conf_args(conf: Mapping[str, Any]) -> Tuple[str, ...]:
    out: List[str] = []
    for sub in ("encoder_conf", "decoder_conf"):
        for key, value in conf.items():
            text = json.dumps(value).replace(" ", "") if isinstance(value, list) else str(value)
            out += [f"--{sub}", f"{key}={text}"]
    return tuple(out)


def lr_cell(modality: str, variant: str, seed: int, init: str = "svd") -> Cell:
    """An LR-SMS cell: ``variant`` of LR_ROWS with SVD or Kaiming factors."""
    label, conf = LR_ROWS[variant]
    conf = dict(conf)
    requires = None
    if init != "svd":
        conf["lowrank_init"] = init
        label += f" ({init.capitalize()})"
        requires = "lowrank_init"
    name = f"{MODALITY_NAME[modality]}_lr_{variant}{'' if init == 'svd' else '_' + init}_s{seed}"
    args = ("--seed", str(seed)) + depth_args(LR_DEPTH) + _conf_args(conf)
    # LR-SMS Tables I-II (ASR) are clean-speech tables: no babble test sets;
    # the AVSR table keeps them (LR-SMS Table III is WER by SNR).
    run_args = ("--snrs", "") if modality == "audio" else ()
    return Cell(tag=name, row=label, modality=modality, method="lr_sms" if conf else "dense",
                seed=seed, depth=LR_DEPTH, train_args=args, requires=requires,
                run_args=run_args)


def table_cells(table: str, seeds: Sequence[int] = SEEDS,
                depths: Sequence[int] = VSR_DEPTHS,
                dense_only_depths: Sequence[int] = DENSE_ONLY_DEPTHS) -> List[Cell]:
    """The cells of a table, in run order (dependencies first)."""
    cells: List[Cell] = []
    if table == "table1":
        for depth in depths:
            for seed in seeds:
                for variant in ("dense", "ls", "msrs", "msrsdense", "msrsls", "msrsgm"):
                    cells.append(vsr_cell(variant, depth, seed))
        for depth in dense_only_depths:
            for seed in seeds:
                cells.append(vsr_cell("dense", depth, seed))
    elif table == "table4":
        deep = max(depths)
        for seed in seeds:
            for variant in ("dense", "msrs", "msrsgm", "set", "rigl", "gmp", "chase"):
                cells.append(vsr_cell(variant, deep, seed))
            cells.append(vsr_cell("dense", min(depths), seed))  # the frontend source
            for variant in ("fe_set", "fe_rigl", "fe_gmp", "fe_chase", "fe_msrs"):
                cells.append(vsr_cell(variant, deep, seed))
    elif table == "fig2":
        deep = max(depths)
        for seed in seeds:
            for lam in LAMBDAS:
                cells.append(vsr_cell("msrs" if lam == DEMO_LAMBDA else f"lam{lam:g}",
                                      deep, seed))
    elif table in ("lrsms_asr", "lrsms_avsr"):
        modality = "audio" if table == "lrsms_asr" else "av"
        variants = ["full", "a025", "a012", "mhsa012", "ffn025", "linear"]
        for seed in seeds:
            for variant in variants:
                cells.append(lr_cell(modality, variant, seed))
            if table == "lrsms_asr":  # LR-SMS Fig. 4: SVD vs Kaiming, FFN only
                cells.append(lr_cell(modality, "ffn050", seed))
                for variant in ("ffn025", "ffn050"):
                    cells.append(lr_cell(modality, variant, seed, init="kaiming"))
    else:
        raise ValueError(f"unknown table {table!r}; tables: {', '.join(TABLES)}")
    seen, unique = set(), []
    for cell in cells:  # a cell listed twice (shared rows) runs once
        if cell.tag not in seen:
            seen.add(cell.tag)
            unique.append(cell)
    return unique


DEMO_LAMBDA = 3e-7  # mask_penalty of conf/tuning/search_vsr.yaml
MICRO_CELLS = {  # --micro: two cells of each table (one seed, one epoch)
    "table1": ("dense", "msrs"),
    "table4": ("dense", "msrs"),
    "fig2": ("msrs", "lam3e-06"),
    "lrsms_asr": ("full", "linear"),
    "lrsms_avsr": ("full", "linear"),
}


def micro_cells(table: str, depth: int) -> List[Cell]:
    """Two cells of ``table`` at micro size (seed 1, one depth)."""
    first, second = MICRO_CELLS[table]
    if table.startswith("lrsms"):
        modality = "audio" if table == "lrsms_asr" else "av"
        return [lr_cell(modality, first, 1), lr_cell(modality, second, 1)]
    return [vsr_cell(first, depth, 1), vsr_cell(second, depth, 1)]


# ------------------------------------------------------------------ features
def recipe_methods(recipe_dir: Path) -> List[str]:
    """The ``--method`` values the recipe's avsr.sh accepts."""
    text = (recipe_dir / "avsr.sh").read_text(encoding="utf-8")
    match = re.search(r'_one_of method "\$\{method\}" ([^\n]+)', text)
    return match.group(1).split() if match else []


def _encoder_accepts(key: str) -> bool:
    import inspect

    from espnet_msrs.asr.encoder.conformer_encoder import MSRSConformerEncoder

    return key in inspect.signature(MSRSConformerEncoder.__init__).parameters


FEATURES: Dict[str, Tuple[str, Callable[[Path], bool]]] = {
    "sparse_methods": ("recipe --method set|rigl|gmp|chase (issue 13)",
                       lambda d: {"set", "rigl", "gmp", "chase"} <= set(recipe_methods(d))),
    "lowrank_init": ("encoder_conf lowrank_init: kaiming (issue 12)",
                     lambda d: _encoder_accepts("lowrank_init")),
}


def missing_feature(cell: Cell, recipe_dir: Path) -> Optional[str]:
    """Why ``cell`` cannot run with this code (None if it can)."""
    if cell.requires is None:
        return None
    what, check = FEATURES[cell.requires]
    return None if check(recipe_dir) else f"needs {what}, not in this code version"


# -------------------------------------------------------------------- runner
@dataclass
class Knobs:
    """Options that scale the study without changing its cells' definitions."""

    recipe_dir: Path = STUDY_DIR
    jobs: int = 2
    ngpu: int = 0
    micro: bool = False
    local_data_opts: Optional[str] = None
    run_args: Tuple[str, ...] = ()  # extra options of run.sh (e.g. --dist_launcher)


def _git(recipe_dir: Path, *args: str) -> str:
    try:
        out = subprocess.run(["git", "-C", str(recipe_dir), *args], capture_output=True,
                             text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


#: The study's own outputs, tracked in git and rewritten by every report.
STUDY_OUTPUTS = ("results", "figures", "STUDY.md", "DISCUSSION.md")


def code_revision(recipe_dir: Path) -> str:
    """Revision of the code the cells run: the git checkout holding
    ``recipe_dir`` (its ``path.sh`` puts that checkout's package on the
    path), or this script's repository for a recipe outside git (the micro
    test's sandbox, whose ``path.sh`` points here); ``-dirty`` if a tracked
    file other than the study's outputs differs from it."""
    root = _git(recipe_dir, "rev-parse", "--show-toplevel")
    repo = Path(root).resolve() if root != "unknown" else REPO
    rev = _git(repo, "rev-parse", "--short=12", "HEAD")
    try:
        study = Path(recipe_dir).resolve().relative_to(repo)
    except ValueError:  # a sandbox outside the repository
        study = Path(__file__).resolve().parents[1].relative_to(REPO)
    excludes = [f":(exclude){study / name}" for name in STUDY_OUTPUTS]
    changed = _git(repo, "status", "--porcelain", "--untracked-files=no", "--", ".", *excludes)
    return rev + ("-dirty" if changed and changed != "unknown" else "")


def _run_sh_base(knobs: Knobs) -> List[str]:
    cmd = ["./run.sh", "--ngpu", str(knobs.ngpu)]
    if knobs.ngpu > 0:
        cmd += ["--gpu_inference", "true"]
    if knobs.local_data_opts is not None:
        cmd += ["--local_data_opts", knobs.local_data_opts]
    return cmd + list(knobs.run_args)


def data_command(modality: str, knobs: Knobs) -> List[str]:
    """Stages 1-7 for a modality (shared by every cell of that modality)."""
    return _run_sh_base(knobs) + ["--stage", "1", "--stop_stage", "7", "--modality", modality,
                                  "--asr_config", CONFIGS[modality][0], "--verbose", "false"]


def cell_command(cell: Cell, knobs: Knobs) -> List[str]:
    """The recipe command of a cell (stages 8-12)."""
    train_config, search_config = CONFIGS[cell.modality]
    train_args = list(cell.train_args)
    search_args = list(cell.search_args)
    if knobs.micro:  # one epoch of a few small batches, each logged
        train_args += ["--max_epoch", "1", "--log_interval", "1", "--batch_size", "4"]
    extra = list(cell.run_args)
    if cell.init_from:  # the recipe's option: frontend.* of another experiment's model
        extra += ["--init_frontend", f"exp/{cell.init_from}/train/valid.acc.ave.pth"]
    cmd = _run_sh_base(knobs) + extra + [
        "--stage", "8", "--stop_stage", "12", "--tag", cell.tag,
        "--modality", cell.modality, "--method", cell.method,
        "--retrain_mode", cell.retrain_mode, "--asr_config", train_config,
        "--asr_args", " ".join(train_args), "--inference_nj", "1", "--verbose", "false",
    ]
    if cell.method == "msrs":
        cmd += ["--search_config", search_config, "--search_args", " ".join(search_args)]
    return cmd


def _env(knobs: Knobs) -> Dict[str, str]:
    env = dict(os.environ)
    threads = max(1, (os.cpu_count() or 1) // max(1, knobs.jobs))
    env.setdefault("OMP_NUM_THREADS", str(threads))
    env.setdefault("MKL_NUM_THREADS", env["OMP_NUM_THREADS"])
    return env


def _read_json(path: Path) -> Optional[Dict[str, Any]]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def cell_done(cell: Cell, knobs: Knobs) -> bool:
    """The cell's recorded command finished and its scores exist."""
    record = _read_json(knobs.recipe_dir / "exp" / cell.tag / "study_cell.json")
    return bool(record and record.get("rc") == 0
                and record.get("command") == cell_command(cell, knobs)
                and (knobs.recipe_dir / "exp" / cell.tag / "RESULTS.md").is_file())


def link_search(cell: Cell, recipe_dir: Path) -> None:
    """Point ``exp/<tag>/mask_search`` at the search this cell reuses."""
    link = recipe_dir / "exp" / cell.tag / "mask_search"
    target = Path("..") / cell.search_from / "mask_search"
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() and os.readlink(link) == str(target):
        return
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        raise ValueError(f"{link} exists and is not a link to {target}: remove it to reuse "
                         f"the search of {cell.search_from}")
    link.symlink_to(target)


def run_logged(cmd: List[str], cwd: Path, log: Path, env: Mapping[str, str]
               ) -> Tuple[int, float]:
    """Run ``cmd`` with its output appended to ``log``.

    Returns its exit status and its CPU time (user + system seconds of the
    command and every descendant it waited for: the recipe's training,
    decoding and scoring processes), which unlike the wall time does not
    depend on what else the machine runs.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as f:
        f.write(f"# {shlex.join(cmd)}\n# started {datetime.datetime.now().isoformat()}\n")
        f.flush()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT,
                                env=dict(env))
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = rc = os.waitstatus_to_exitcode(status)
        cpu = usage.ru_utime + usage.ru_stime
        f.write(f"# ended {datetime.datetime.now().isoformat()} status {rc} "
                f"cpu {cpu:.1f} s\n")
    return rc, cpu


def run_cell(cell: Cell, knobs: Knobs) -> Dict[str, Any]:
    """Run one cell (stages 8-12) and record how it went."""
    exp = knobs.recipe_dir / "exp" / cell.tag
    if cell.search_from:
        link_search(cell, knobs.recipe_dir)
    cmd = cell_command(cell, knobs)
    start = time.time()
    logger.info(f"cell {cell.tag}: started ({cell.row}, depth {cell.depth}, seed {cell.seed})")
    rc, cpu = run_logged(cmd, knobs.recipe_dir, exp / "study_run.log", _env(knobs))
    record = {"tag": cell.tag, "command": cmd, "rc": rc, "start": start,
              "end": time.time(), "wall_s": round(time.time() - start, 1),
              "cpu_s": round(cpu, 1),
              "code": code_revision(knobs.recipe_dir), "host": platform.node()}
    _write_json(exp / "study_cell.json", record)
    if rc != 0:
        logger.error(f"cell {cell.tag}: failed (status {rc}); see {exp / 'study_run.log'}")
    else:
        logger.info(f"cell {cell.tag}: done in {record['wall_s']:.0f} s")
    return record


def run_table(table: str, knobs: Knobs, cells: Sequence[Cell]) -> Dict[str, Any]:
    """Run the cells of a table, ``knobs.jobs`` at a time, dependencies first."""
    recipe_dir = knobs.recipe_dir
    skipped = {}
    runnable = []
    for cell in cells:
        why = missing_feature(cell, recipe_dir)
        if why:
            skipped[cell.tag] = why
            logger.warning(f"cell {cell.tag}: not run: {why}")
        else:
            runnable.append(cell)
    start = time.time()
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    for modality in sorted({c.modality for c in runnable}):
        logger.info(f"data stages 1-7 for modality {modality}")
        rc, _ = run_logged(data_command(modality, knobs), recipe_dir,
                        recipe_dir / "exp" / "study_logs" / f"data_{modality}.log", _env(knobs))
        if rc != 0:
            raise RuntimeError(f"stages 1-7 failed for modality {modality}; see "
                               f"{recipe_dir / 'exp' / 'study_logs' / f'data_{modality}.log'}")
    by_tag = {c.tag: c for c in runnable}
    status: Dict[str, str] = {}  # tag -> done | failed | blocked
    for cell in runnable:
        if cell_done(cell, knobs):
            status[cell.tag] = "done"
    pending = [c for c in runnable if c.tag not in status]
    running: Dict[str, threading.Thread] = {}
    results: Dict[str, Dict[str, Any]] = {}
    lock = threading.Lock()

    def worker(cell: Cell) -> None:
        record = run_cell(cell, knobs)
        with lock:
            results[cell.tag] = record
            status[cell.tag] = "done" if record["rc"] == 0 else "failed"

    while pending or running:
        for tag in [t for t, th in running.items() if not th.is_alive()]:
            running.pop(tag).join()
        for cell in list(pending):
            if len(running) >= max(1, knobs.jobs):
                break
            deps = [d for d in cell.deps]
            if any(status.get(d) in ("failed", "blocked") or
                   (d not in by_tag and not (recipe_dir / "exp" / d).is_dir()) for d in deps):
                status[cell.tag] = "blocked"
                pending.remove(cell)
                logger.error(f"cell {cell.tag}: not run: it needs {', '.join(deps)}")
                continue
            if all(status.get(d) == "done" or (d not in by_tag) for d in deps):
                pending.remove(cell)
                thread = threading.Thread(target=worker, args=(cell,), daemon=True)
                running[cell.tag] = thread
                thread.start()
        time.sleep(0.5)
    summary = {
        "table": table, "start": start, "end": time.time(),
        "wall_s": round(time.time() - start, 1), "jobs": knobs.jobs, "micro": knobs.micro,
        "cells_run_now": sorted(results), "status": status, "not_run": skipped,
        "code": code_revision(knobs.recipe_dir), "host": platform.node(),
        "cpus": os.cpu_count(), "load_start": load_start,
        "load_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    history_file = recipe_dir / "exp" / "study_logs" / f"run_{table}.json"
    history = (_read_json(history_file) or {}).get("runs", [])
    _write_json(history_file, {"table": table, "runs": history + [summary]})
    failed = [t for t, s in status.items() if s != "done"]
    logger.info(f"table {table}: {len(runnable) - len(failed)}/{len(runnable)} cells done "
                f"in {summary['wall_s']:.0f} s ({len(results)} run now)")
    if failed:
        logger.error(f"table {table}: cells not done: {', '.join(sorted(failed))}")
    summary["failed"] = failed
    return summary


# ----------------------------------------------------------------- artifacts
_EPOCH_RESULT = re.compile(r"(\d+)epoch results: ")


def log_epochs(log: Path) -> int:
    """Number of finished epochs in an ESPnet ``train.log`` (its last "N epoch results")."""
    if not log.is_file():
        return 0
    found = _EPOCH_RESULT.findall(log.read_text(encoding="utf-8", errors="replace"))
    return max((int(n) for n in found), default=0)


def log_series(log: Path, key: str = GRAD_KEY) -> List[Tuple[int, int, float]]:
    """(epoch, global step, value) of ``key`` for every logged interval of a ``train.log``.

    The global step is the interval's last batch plus the batches of earlier
    epochs; a resumed run's repeated intervals keep their last value.
    """
    if not log.is_file():
        return []
    from espnet_msrs.utils.train_log import interval_series

    return interval_series(log, key)


def grad_summary(series: Sequence[Tuple[int, int, float]]) -> Dict[str, Optional[float]]:
    """g = median over GRAD_EPOCHS, the first logged value, and their ratio."""
    window = [v for e, _, v in series if e in GRAD_EPOCHS and math.isfinite(v)]
    first = series[0][2] if series else None
    g = statistics.median(window) if window else None
    ratio = g / first if g is not None and first else None
    return {"g": g, "first": first, "ratio": ratio}


def wer_of(exp: Path, test_set: str = TEST_SET) -> Dict[str, float]:
    """WER (%) of every scored set of a cell: {set name: wer}."""
    out = {}
    for result in sorted(exp.glob("decode_*/*/score/result.json")):
        data = _read_json(result)
        if data and "wer" in data:
            out[result.parent.parent.name] = float(data["wer"])
    return out


def cell_result(cell: Cell, recipe_dir: Path) -> Dict[str, Any]:
    """Everything the tables need about a cell, read from its artifacts."""
    exp = recipe_dir / "exp" / cell.tag
    out: Dict[str, Any] = {"tag": cell.tag, "row": cell.row, "seed": cell.seed,
                           "depth": cell.depth, "theta0": cell.theta0,
                           "modality": cell.modality, "method": cell.method}
    why = missing_feature(cell, recipe_dir)
    record = _read_json(exp / "study_cell.json") or {}
    out["wall_s"] = record.get("wall_s")
    out["cpu_s"] = record.get("cpu_s")
    out["code"] = record.get("code")
    if why:
        out["status"] = "not run"
        out["why"] = why
        return out
    wers = wer_of(exp)
    if TEST_SET not in wers:
        out["status"] = "run error" if record.get("rc") not in (None, 0) else "missing"
        out["why"] = (f"status {record.get('rc')}, see exp/{cell.tag}/study_run.log"
                      if out["status"] == "run error" else "not run yet")
        return out
    out["status"] = "ok"
    out["wer"] = wers[TEST_SET]
    out["wer_sets"] = wers
    model = exp / "train" / "valid.acc.ave.pth"
    if model.exists():
        from espnet_msrs.bin.make_results import model_facts

        facts = model_facts(model, exp / "mask_search" / "mask.pth")
        out.update({k: facts[k] for k in ("n_params", "n_nonzero", "sparsity_all",
                                          "sparsity_prunable", "ranks")})
    out["train_epochs"] = log_epochs(exp / "train" / "train.log")
    report = _read_json(exp / "mask_search" / "sparsity_report.json")
    if report:
        search = report.get("search", {})
        out["search"] = {
            "epochs": search.get("final_epoch"),
            "stop_reason": search.get("stop_reason"),
            "history": search.get("sparsity_history"),
            "mask_penalty": search.get("mask_penalty"),
            "sparsity_prunable": report.get("prunable", {}).get("sparsity"),
            "sparsity_all": report.get("all_params", {}).get("sparsity"),
        }
    train_series = log_series(exp / "train" / "train.log")
    search_series = log_series(exp / "mask_search" / "train.log") if cell.has_search else []
    out["grad"] = {"train": grad_summary(train_series), "search": grad_summary(search_series)}
    out["grad_series"] = {"train": [[s, v] for _, s, v in train_series],
                          "search": [[s, v] for _, s, v in search_series]}
    return out


# --------------------------------------------------------------- statistics
def trains(wer: float, blind: float) -> bool:
    """The protocol's definition: a run trains iff WER < WER_blind − margin."""
    return wer < blind - BLIND_MARGIN


def summarise(values: Sequence[float]) -> Optional[Dict[str, float]]:
    """Mean, min, max and range of the seeds' values (None if there are none)."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values),
            "range": max(values) - min(values), "n": len(values)}


def trainable_mark(wers: Sequence[float], blind: float) -> str:
    """✓ if every seed trains, ✗ if none does, k/n otherwise."""
    if not wers:
        return "–"
    ok = sum(trains(w, blind) for w in wers)
    if ok == len(wers):
        return "✓"
    if ok == 0:
        return "✗"
    return f"{ok}/{len(wers)}"


REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTED = (
    "reproduced", "not reproduced", "inconclusive", "not tested")


def verdict_all(flags: Sequence[bool]) -> str:
    """A claim that should hold for every seed: all → reproduced, none → not."""
    if not flags:
        return NOT_TESTED
    if all(flags):
        return REPRODUCED
    if not any(flags):
        return NOT_REPRODUCED
    return INCONCLUSIVE


def verdict_lower(a: Sequence[float], b: Sequence[float]) -> str:
    """"A has lower WER than B" (README rule)."""
    if not a or not b:
        return NOT_TESTED
    if max(a) < min(b):
        return REPRODUCED
    if statistics.fmean(a) >= statistics.fmean(b):
        return NOT_REPRODUCED
    return INCONCLUSIVE


def verdict_parity(a: Sequence[float], b: Sequence[float]) -> str:
    """"A keeps the WER of B" (README rule)."""
    if not a or not b:
        return NOT_TESTED
    tol = max(PARITY_MIN_TOL, max(a) - min(a), max(b) - min(b))
    if statistics.fmean(a) <= statistics.fmean(b) + tol:
        return REPRODUCED
    if min(a) > max(b):
        return NOT_REPRODUCED
    return INCONCLUSIVE


def verdict_increasing(xs: Sequence[float], seeds_values: Sequence[Sequence[float]]) -> str:
    """Means strictly increasing in x → reproduced; a decrease larger than the
    seed range somewhere → not reproduced; inconclusive otherwise."""
    points = [(x, v) for x, v in zip(xs, seeds_values) if v]
    if len(points) < 2:
        return NOT_TESTED
    points.sort()
    means = [statistics.fmean(v) for _, v in points]
    if all(b > a for a, b in zip(means, means[1:])):
        return REPRODUCED
    for (_, va), (_, vb), ma, mb in zip(points, points[1:], means, means[1:]):
        spread = max(max(va) - min(va), max(vb) - min(vb))
        if ma - mb > spread:
            return NOT_REPRODUCED
    return INCONCLUSIVE


def slope(xs: Sequence[float], ys: Sequence[float]) -> Optional[float]:
    """Least-squares slope of ys against xs."""
    if len(xs) < 2:
        return None
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else None


def combine(verdicts: Iterable[str]) -> str:
    """Joint verdict of sub-claims that must all hold."""
    verdicts = [v for v in verdicts if v != NOT_TESTED]
    if not verdicts:
        return NOT_TESTED
    if all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    if any(v == NOT_REPRODUCED for v in verdicts):
        return NOT_REPRODUCED
    return INCONCLUSIVE


def blind_wer(recipe_dir: Path) -> Dict[str, Any]:
    """WER of the input-blind decoder (the most frequent training word of each
    GRID slot, for every test utterance), scored like recipe stage 12."""
    from collections import Counter

    from espnet_msrs.scoring.results import read_transcripts, score_dir

    train_text = recipe_dir / "dump" / "raw" / "train" / "text"
    test_text = recipe_dir / "dump" / "raw" / TEST_SET / "text"
    train = read_transcripts(train_text)
    lengths = {len(words) for words in train.values()}
    if len(lengths) != 1:
        raise ValueError(f"{train_text}: expected GRID sentences of one length, got "
                         f"lengths {sorted(lengths)}")
    slots = [Counter(words[i] for words in train.values()) for i in range(lengths.pop())]
    sentence = " ".join(c.most_common(1)[0][0] for c in slots)
    out = recipe_dir / "exp" / "study_logs" / "blind"
    out.mkdir(parents=True, exist_ok=True)
    test = read_transcripts(test_text)
    (out / "text").write_text("".join(f"{u} {sentence}\n" for u in test), encoding="utf-8")
    result = score_dir(test_text, out / "text", out / "score")
    return {"wer_blind": round(float(result["wer"]), 2), "sentence": sentence,
            "n_test_utts": len(test), "n_test_words": result["word"]["n_ref"],
            "scorer": result["scorer"]}


# ---------------------------------------------------------------- formatting
def fmt_range(summary: Optional[Mapping[str, float]], digits: int = 1, scale: float = 1.0) -> str:
    """``mean [min–max]`` (one seed: the value)."""
    if not summary:
        return "–"
    mean, lo, hi = (summary[k] * scale for k in ("mean", "min", "max"))
    if summary["n"] == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{lo:.{digits}f}–{hi:.{digits}f}]"


def fmt_count(n: Optional[float]) -> str:
    if n is None:
        return "–"
    if n >= 1e6:
        return f"{n / 1e6:.2f} M"
    return f"{n / 1e3:.0f} k"


def fmt_epochs(results: Sequence[Mapping[str, Any]]) -> str:
    """``T`` or ``j + T`` (ranges over seeds)."""
    def span(values):
        values = sorted({v for v in values if v is not None})
        if not values:
            return "?"
        return str(values[0]) if len(values) == 1 else f"{values[0]}–{values[-1]}"

    train = span(r.get("train_epochs") for r in results)
    searched = [r["search"]["epochs"] for r in results if r.get("search")]
    return f"{span(searched)} + {train}" if searched else train


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def status_note(results: Sequence[Mapping[str, Any]]) -> Optional[str]:
    """Why some seeds of a row have no numbers (None if all have)."""
    notes = sorted({f"{r['tag']}: {r['status']} ({r.get('why', '')})"
                    for r in results if r.get("status") != "ok"})
    return "; ".join(notes) if notes else None


def group_rows(results: Sequence[Mapping[str, Any]], keys: Sequence[str] = ("depth", "row", "theta0")
               ) -> Dict[Tuple, List[Mapping[str, Any]]]:
    groups: Dict[Tuple, List[Mapping[str, Any]]] = {}
    for r in results:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    return groups


def ok(results: Iterable[Mapping[str, Any]]) -> List[Mapping[str, Any]]:
    return [r for r in results if r.get("status") == "ok"]


def wers(results: Iterable[Mapping[str, Any]]) -> List[float]:
    return [r["wer"] for r in ok(results)]


def row_cells(results: Sequence[Mapping[str, Any]], blind: float) -> Dict[str, str]:
    """Formatted #Params, Sparsity, Epochs, WER and Trainable of one table row."""
    good = ok(results)
    nonzero = summarise([r.get("n_nonzero") for r in good])
    sparsity = summarise([r.get("sparsity_all") for r in good])
    return {
        "params": fmt_count(nonzero["mean"]) if nonzero else "–",
        "sparsity": fmt_range(sparsity, 1, 100.0) if sparsity else "–",
        "epochs": fmt_epochs(good) if good else "–",
        "wer": fmt_range(summarise(wers(good))),
        "trainable": trainable_mark(wers(good), blind),
    }


# ------------------------------------------------------------- table reports
PAPER_T1 = {  # MSRS Table 1, small VSR models on LRS3 (S); MSRS + LayerScale: large, L
    "Dense": "56 M · 0 · 100.0 · ✗",
    "LayerScale": "56 M · 0 · 42.8 · ✓",
    "MSRS → dense": "56 M · 0 · 48.5 · ✓",
    "MSRS → sparse": "32 M · 43.8 · 47.3 · ✓",
    "MSRS + LayerScale": "151 M · 39.7 · 23.2 · ✓ (large, L; MSRS → sparse there: 23.9)",
    "Dense with MSRS masks": "56 M · 0 · 52.1 · ✓ (Table 4)",
}
T1_ROWS = ("Dense", "LayerScale", "MSRS → dense", "MSRS → sparse", "MSRS + LayerScale",
           "Dense with MSRS masks")


def claim(name: str, paper: str, verdict: str, evidence: str) -> Dict[str, str]:
    return {"claim": name, "paper": paper, "verdict": verdict, "evidence": evidence}


def _by(results, **match):
    return [r for r in results if all(r.get(k) == v for k, v in match.items())]


def _g(r: Mapping[str, Any], phase: str) -> Optional[float]:
    return (r.get("grad") or {}).get(phase, {}).get("g")


def report_table1(results: List[Dict[str, Any]], blind: float, fig_dir: Path
                  ) -> Tuple[List[str], List[Dict[str, str]]]:
    depths = sorted({r["depth"] for r in results})
    lines = [
        "Columns as in the paper: θ0, #Params (non-zero parameters of the decoded "
        "model), Sparsity (zeros over all parameters, %), Epochs (mask search j + "
        "(re)training T), WER (%, mean [min–max] over the seeds), Trainable (✓: every "
        f"seed below WER_blind − {BLIND_MARGIN:g} = {blind - BLIND_MARGIN:.1f} %). "
        "Paper column: the small VSR model on LRS3 (#Params · Sparsity · WER · Trainable).",
        "",
    ]
    for depth in depths:
        lines += [f"**Depth {depth}** (encoder {depth} blocks, decoder {max(1, depth // 2)})", ""]
        rows = []
        for row in T1_ROWS:
            group = _by(results, depth=depth, row=row)
            if not group:
                continue
            c = row_cells(group, blind)
            note = status_note(group)
            rows.append([row, "Random", c["params"], c["sparsity"], c["epochs"],
                         c["wer"] + (f" ({note})" if note else ""), c["trainable"],
                         PAPER_T1[row]])
        lines += md_table(["Methods", "θ0", "#Params", "Sparsity (%)", "Epochs", "WER (%)",
                           "Trainable", "Paper"], rows) + [""]
    # gradient flow (Fig. 1)
    grad_rows = []
    for depth in depths:
        for row, phase in (("Dense", "train"), ("LayerScale", "train"),
                           ("MSRS → sparse", "search"), ("Dense with MSRS masks", "train")):
            group = ok(_by(results, depth=depth, row=row))
            if not group:
                continue
            gs = summarise([_g(r, phase) for r in group])
            ratios = summarise([(r.get("grad") or {}).get(phase, {}).get("ratio") for r in group])
            label = "MSRS (mask search)" if phase == "search" else row
            grad_rows.append([str(depth), label, fmt_range(gs, 4), fmt_range(ratios, 3)])
    lines += [f"Gradient flow (Fig. 1): g = median `{GRAD_KEY}` over the logged intervals of "
              f"epochs {GRAD_EPOCHS[0]}–{GRAD_EPOCHS[-1]}; ratio = g / first logged value.", ""]
    lines += md_table(["Depth", "Run", "g", "g / first"], grad_rows) + [""]
    figure = plot_fig1(results, fig_dir / "fig1_grad_norm.png")
    if figure:
        lines += [f"![Fig. 1 in miniature]({figure})", ""]

    # verdicts
    verdicts = []
    dense_by_depth = {d: wers(_by(results, depth=d, row="Dense")) for d in depths}
    fail_depths = [d for d, w in dense_by_depth.items()
                   if w and verdict_all([not trains(x, blind) for x in w]) == REPRODUCED]
    tested = [d for d, w in dense_by_depth.items() if w]
    if fail_depths:
        v, where = REPRODUCED, f"dense fails at depth {', '.join(map(str, fail_depths))}"
    elif any(verdict_all([not trains(x, blind) for x in dense_by_depth[d]]) == INCONCLUSIVE
             for d in tested):
        v, where = INCONCLUSIVE, "seeds disagree at some depth"
    else:
        v, where = (NOT_REPRODUCED if tested else NOT_TESTED), \
            f"dense trains at every depth tried ({', '.join(map(str, tested))})"
    detail = "; ".join(f"D={d}: {fmt_range(summarise(w))}" for d, w in dense_by_depth.items() if w)
    verdicts.append(claim("Dense VSR from random initialisation fails to train (Table 1)",
                          "100 % WER, ✗", v, f"{where}; dense WER {detail}"))
    for row, paper in (("LayerScale", "42.8 % ✓"), ("MSRS → dense", "48.5 % ✓"),
                       ("MSRS → sparse", "47.3 % ✓ at 43.8 % sparsity"),
                       ("Dense with MSRS masks", "52.1 % ✓ (Table 4)")):
        if not tested:
            v, ev = NOT_TESTED, "no dense run"
        elif not fail_depths:
            v = NOT_REPRODUCED
            ev = ("premise absent: dense trains at every depth; " + "; ".join(
                f"D={d}: {fmt_range(summarise(wers(_by(results, depth=d, row=row))))}"
                for d in depths))
        else:
            per = [verdict_all([trains(x, blind) for x in wers(_by(results, depth=d, row=row))])
                   for d in fail_depths]
            v = combine(per)
            ev = "; ".join(f"D={d}: {fmt_range(summarise(wers(_by(results, depth=d, row=row))))}"
                           for d in fail_depths)
        verdicts.append(claim(f"{row} trains where dense fails", paper, v, ev))
    per, ev = [], []
    for d in depths:
        a = wers(_by(results, depth=d, row="MSRS → sparse"))
        b = wers(_by(results, depth=d, row="MSRS → dense"))
        if a and b:  # depths with both rows (not the dense-only ones)
            per.append(verdict_parity(a, b))
            ev.append(f"D={d}: sparse {fmt_range(summarise(a))} vs dense {fmt_range(summarise(b))}")
    verdicts.append(claim("MSRS → sparse keeps the WER of MSRS → dense",
                          "47.3 vs 48.5 (small), 23.9 vs 21.1 (large)", combine(per), "; ".join(ev)))
    per, ev = [], []
    for d in depths:
        a = wers(_by(results, depth=d, row="MSRS + LayerScale"))
        b = wers(_by(results, depth=d, row="MSRS → sparse"))
        if a and b:
            per.append(verdict_lower(a, b))
            ev.append(f"D={d}: {fmt_range(summarise(a))} vs {fmt_range(summarise(b))}")
    verdicts.append(claim("MSRS + LayerScale has lower WER than MSRS → sparse (complementary)",
                          "23.2 vs 23.9 (large, L)", combine(per), "; ".join(ev)))
    where = fail_depths or depths
    flags, ev = [], []
    for d in where:
        for seed in sorted({r["seed"] for r in results}):
            dense = ok(_by(results, depth=d, row="Dense", seed=seed))
            msrs = ok(_by(results, depth=d, row="MSRS → sparse", seed=seed))
            if dense and msrs and _g(dense[0], "train") is not None \
                    and _g(msrs[0], "search") is not None:
                gd, gm = _g(dense[0], "train"), _g(msrs[0], "search")
                flags.append(gm > gd)
                ev.append(f"D={d} seed {seed}: MSRS {gm:.2e} vs dense {gd:.2e}")
    scope = "at the depths where dense fails" if fail_depths else \
        "at every depth (dense never fails here)"
    verdicts.append(claim("MSRS gives the first encoder FFN a healthier (larger) gradient than "
                          f"dense, {scope} (Fig. 1)", "dense vanishes, MSRS does not",
                          verdict_all(flags), "; ".join(ev) or "no gradient logs"))
    return lines, verdicts


def plot_fig1(results: Sequence[Mapping[str, Any]], out: Path) -> Optional[str]:
    """Gradient norm of the first encoder FFN vs step, one panel per depth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depths = sorted({r["depth"] for r in results})
    runs = (("Dense", "train", "tab:grey"), ("LayerScale", "train", "tab:orange"),
            ("MSRS → sparse", "search", "tab:green"),
            ("Dense with MSRS masks", "train", "tab:blue"))
    if not any((r.get("grad_series") or {}).get(phase) for row, phase, _ in runs
               for r in ok(_by(results, row=row))):
        return None
    fig, axes = plt.subplots(1, len(depths), figsize=(5.0 * len(depths) + 1, 3.6),
                             sharey=True, squeeze=False)
    for ax, depth in zip(axes[0], depths):
        for row, phase, color in runs:
            for r in ok(_by(results, depth=depth, row=row)):
                series = r.get("grad_series", {})
                points = list(series.get(phase, []))
                if phase == "search":  # the MSRS run: search, then sparse retraining
                    shift = points[-1][0] if points else 0
                    points += [[s + shift, v] for s, v in series.get("train", [])]
                if not points:
                    continue
                label = "MSRS (search → sparse)" if phase == "search" else row
                ax.plot([p[0] for p in points], [p[1] for p in points], color=color,
                        linewidth=1.0, linestyle="-" if r["seed"] == min(SEEDS) else ":",
                        label=f"{label} s{r['seed']}")
        ax.set_yscale("log")
        ax.set_title(f"VSR, depth {depth}")
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    axes[0][0].set_ylabel(f"L2 grad norm, first encoder FFN ({GRAD_KEY})")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return f"figures/{out.name}"


PAPER_T4 = {  # MSRS Table 4 (small VSR, LRS3): #Params · Sparsity · WER · Trainable
    ("Frontend", "SET"): "34 M · 40.0 · 44.6 · ✓", ("Frontend", "RigL"): "34 M · 40.0 · 44.4 · ✓",
    ("Frontend", "GMP"): "34 M · 40.0 · 44.7 · ✓", ("Frontend", "CHASE"): "34 M · 40.0 · 42.7 · ✓",
    ("Frontend", "MSRS"): "33 M · 41.7 · 42.5 · ✓",
    ("Random", "Dense"): "56 M · 0 · 100.0 · ✗", ("Random", "SET"): "34 M · 40.0 · 100.0 · ✗",
    ("Random", "RigL"): "34 M · 40.0 · 100.0 · ✗", ("Random", "GMP"): "34 M · 40.0 · 100.0 · ✗",
    ("Random", "CHASE"): "34 M · 40.0 · 100.0 · ✗", ("Random", "MSRS"): "32 M · 43.8 · 47.3 · ✓",
    ("Random", "Dense with MSRS masks"): "56 M · 0 · 52.1 · ✓",
}
T4_ORDER = (("Frontend", "SET"), ("Frontend", "RigL"), ("Frontend", "GMP"),
            ("Frontend", "CHASE"), ("Frontend", "MSRS"), ("Random", "Dense"),
            ("Random", "SET"), ("Random", "RigL"), ("Random", "GMP"), ("Random", "CHASE"),
            ("Random", "MSRS"), ("Random", "Dense with MSRS masks"))
BASELINES = ("SET", "RigL", "GMP", "CHASE")
FIG3_GROUPS = ("frontend", "encoder.block", "decoder.block")


def _t4_row(r: Mapping[str, Any]) -> str:
    return "MSRS" if r["row"] in ("MSRS → sparse", "MSRS") else r["row"]


def report_table4(results: List[Dict[str, Any]], blind: float, fig_dir: Path, recipe_dir: Path
                  ) -> Tuple[List[str], List[Dict[str, str]]]:
    deep = max(r["depth"] for r in results)
    main = [r for r in results if r["depth"] == deep]
    lines = [f"VSR at depth {deep} (the deepest of the sweep), ~40 % target sparsity for the "
             "sparse baselines (their recipe default). θ0 = Frontend: the frontend of the dense "
             f"depth-{FRONTEND_SOURCE_DEPTH} VSR model of the same seed (Table 1), loaded with "
             "the recipe's `--init_frontend`; everything else random. Columns as in Table 1.", ""]
    rows = []
    for theta0, name in T4_ORDER:
        group = [r for r in main if r["theta0"] == theta0 and _t4_row(r) == name]
        if not group:
            continue
        c = row_cells(group, blind)
        note = status_note(group)
        rows.append([name, theta0, c["params"], c["sparsity"], c["epochs"],
                     c["wer"] + (f" ({note})" if note else ""), c["trainable"],
                     PAPER_T4[(theta0, name)]])
    lines += md_table(["Methods", "θ0", "#Params", "Sparsity (%)", "Epochs", "WER (%)",
                       "Trainable", "Paper"], rows) + [""]
    # Fig. 3: sparsity per module group of the random-init sparse models, drawn by
    # plot_sparsity from the runs' sparsity reports (MSRS: the mask search's).
    erk = ("SET", "RigL", "CHASE")  # the methods that start from ERK densities
    runs = [(f"{_t4_row(r)}{' (ERK)' if _t4_row(r) in erk else ''} s{r['seed']}", r)
            for r in ok(main) if r["theta0"] == "Random" and _t4_row(r) in BASELINES + ("MSRS",)]
    runs = [(label, r) for label, r in runs
            if any((recipe_dir / "exp" / r["tag"] / d / "sparsity_report.json").is_file()
                   for d in ("mask_search", "train"))]
    verdicts = []
    if runs:
        from espnet_msrs.bin import plot_sparsity

        out = fig_dir / "fig3_sparsity_distribution.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        data = plot_sparsity.main(
            [a for label, r in runs for a in ("--run", f"{label}={recipe_dir / 'exp' / r['tag']}")]
            + ["--groups", *FIG3_GROUPS, "--out", str(out),
               "--json", str(recipe_dir / "results" / "table4_fig3.json"),
               "--title", "Sparsity per module group, random initialisation"])
        values = {rep["label"]: {g: rep["groups"].get(g, {}).get("prunable", {}).get("sparsity")
                                 for g in FIG3_GROUPS} for rep in data["reports"]}
        rows = [[label] + [f"{100 * v[g]:.1f}" if v[g] is not None else "–" for g in FIG3_GROUPS]
                for label, v in values.items()]
        lines += ["Fig. 3 in miniature: sparsity (%) of the prunable weights per module group "
                  "(`plot_sparsity` on the runs' sparsity reports; SET, RigL and CHASE start "
                  "from ERK, GMP prunes by magnitude; blocks pooled).", ""]
        lines += md_table(["Run", *FIG3_GROUPS], rows)
        lines += ["", f"![Fig. 3 in miniature](figures/{out.name})", ""]
        msrs = [v for label, v in values.items() if label.startswith("MSRS")]
        flags = [None not in v.values() and v["frontend"] > v["decoder.block"]
                 and v["encoder.block"] > v["decoder.block"] for v in msrs]
        verdicts.append(claim("MSRS prunes the frontend and the encoder more than the decoder "
                              "(Fig. 3)", "MSRS prunes frontend and encoder layers significantly",
                              verdict_all(flags), "; ".join(
                                  f"{label}: " + ", ".join(f"{g} {100 * x:.1f} %"
                                                           for g, x in v.items() if x is not None)
                                  for label, v in values.items() if label.startswith("MSRS"))))

    def w(theta0, name):
        return wers([r for r in main if r["theta0"] == theta0 and _t4_row(r) == name])

    per = [verdict_all([not trains(x, blind) for x in w("Random", m)]) for m in BASELINES]
    verdicts.append(claim("From random initialisation SET, RigL, GMP and CHASE fail", "100 % ✗",
                          combine(per), "; ".join(f"{m}: {fmt_range(summarise(w('Random', m)))}"
                                                  for m in BASELINES)))
    verdicts.append(claim("From random initialisation MSRS trains", "47.3 % ✓",
                          verdict_all([trains(x, blind) for x in w("Random", "MSRS")]),
                          fmt_range(summarise(w("Random", "MSRS")))))
    verdicts.append(claim("Dense training with MSRS's masks on the gradients trains from random "
                          "initialisation", "52.1 % ✓",
                          verdict_all([trains(x, blind) for x in w("Random", "Dense with MSRS masks")]),
                          fmt_range(summarise(w("Random", "Dense with MSRS masks")))))
    per = [verdict_all([trains(x, blind) for x in w("Frontend", m)]) for m in BASELINES + ("MSRS",)]
    verdicts.append(claim("From a pretrained frontend every sparse method trains",
                          "42.5–44.7 % ✓", combine(per),
                          "; ".join(f"{m}: {fmt_range(summarise(w('Frontend', m)))}"
                                    for m in BASELINES + ("MSRS",))))
    return lines, verdicts


def report_fig2(results: List[Dict[str, Any]], blind: float, fig_dir: Path
                ) -> Tuple[List[str], List[Dict[str, str]]]:
    by_lam: Dict[float, List[Dict[str, Any]]] = {}
    for r in results:
        lam = (r.get("search") or {}).get("mask_penalty")
        if lam is None:
            match = re.search(r"λ = (.+)$", r["row"])
            lam = float(match.group(1)) if match else DEMO_LAMBDA
        by_lam.setdefault(float(lam), []).append(r)
    lams = sorted(by_lam)
    depth = max(r["depth"] for r in results)
    lines = [f"MSRS mask search + sparse retraining of the depth-{depth} VSR model for each λ "
             f"(the demo's λ = {DEMO_LAMBDA:g}); sparsity over the masked (prunable) weights, "
             "from the search's per-epoch history.", ""]
    rows, after1, final, wer_by = [], [], [], []
    for lam in lams:
        group = ok(by_lam[lam])
        hist = [(r.get("search") or {}).get("history") or [] for r in group]
        s1 = [h[1] for h in hist if len(h) > 1]
        sf = [(r.get("search") or {}).get("sparsity_prunable") for r in group]
        sf = [x for x in sf if x is not None]
        after1.append(s1)
        final.append(sf)
        wer_by.append(wers(group))
        c = row_cells(by_lam[lam], blind)
        note = status_note(by_lam[lam])
        rows.append([f"{lam:g}", fmt_epochs(group) if group else "–",
                     fmt_range(summarise(s1), 1, 100.0), fmt_range(summarise(sf), 1, 100.0),
                     c["sparsity"], c["wer"] + (f" ({note})" if note else ""), c["trainable"]])
    lines += md_table(["λ", "Epochs (j + T)", "Sparsity after epoch 1 (%)",
                       "Final search sparsity (%)", "Sparsity, all params (%)", "WER (%)",
                       "Trainable"], rows) + [""]
    figure = plot_fig2(by_lam, fig_dir / "fig2_lambda.png")
    if figure:
        lines += [f"![Fig. 2 in miniature]({figure})", ""]
    verdicts = [claim("Larger λ prunes faster and further (Fig. 2)",
                      "larger λ: faster pruning, sparser masks",
                      combine([verdict_increasing(lams, after1), verdict_increasing(lams, final)]),
                      "after epoch 1: " + ", ".join(f"{l:g}: {fmt_range(summarise(v), 1, 100.0)}"
                                                    for l, v in zip(lams, after1))
                      + "; final: " + ", ".join(f"{l:g}: {fmt_range(summarise(v), 1, 100.0)}"
                                                for l, v in zip(lams, final)))]
    means = [(statistics.fmean(w), lam, w) for lam, w in zip(lams, wer_by) if w]
    if len(means) >= 2:
        best = min(means)
        largest = max(means, key=lambda m: m[1])
        v = NOT_REPRODUCED if best[1] == largest[1] else verdict_lower(best[2], largest[2])
        ev = f"best λ = {best[1]:g}: {fmt_range(summarise(best[2]))}; largest λ = " \
             f"{largest[1]:g}: {fmt_range(summarise(largest[2]))}"
    else:
        v, ev = NOT_TESTED, "fewer than two λ with results"
    verdicts.append(claim("Too large a λ costs accuracy (Fig. 2)",
                          "larger λ: recovery harder, accuracy drops", v, ev))
    return lines, verdicts


def plot_fig2(by_lam: Mapping[float, Sequence[Mapping[str, Any]]], out: Path) -> Optional[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    cmap = plt.get_cmap("viridis")
    lams = sorted(by_lam)
    drawn = False
    for i, lam in enumerate(lams):
        color = cmap(i / max(1, len(lams) - 1))
        for r in ok(by_lam[lam]):
            hist = (r.get("search") or {}).get("history") or []
            if hist:
                ax1.plot(range(len(hist)), [100 * h for h in hist], color=color, marker="o",
                         markersize=3, linestyle="-" if r["seed"] == min(SEEDS) else ":",
                         label=f"λ={lam:g} s{r['seed']}")
                drawn = True
        w = wers(by_lam[lam])
        if w:
            ax2.scatter([lam] * len(w), w, color=color)
            ax2.plot([lam], [statistics.fmean(w)], marker="_", markersize=14, color=color)
    if not drawn:
        plt.close(fig)
        return None
    ax1.set_xlabel("mask-search epoch")
    ax1.set_ylabel("sparsity of the binary mask [%]")
    ax1.legend(fontsize=6, ncol=2)
    ax1.grid(True, alpha=0.3)
    ax2.set_xscale("log")
    ax2.set_xlabel("λ")
    ax2.set_ylabel("test WER after sparse retraining [%]")
    ax2.grid(True, alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return f"figures/{out.name}"


# -------------------------------------------------------------------- LR-SMS
PAPER_LR = {  # LR-SMS Tables I–II, ASR on LRS3: #Params · speed-up · memory · WER
    "full": "243 M · 1 · 16.4 GB · 1.99", "a025": "113 M · 1.36× · 14.6 GB · 2.47",
    "a012": "74.2 M · 1.45× · 13.9 GB · 2.48", "mhsa012": "194 M · 1.06× · 15.6 GB · 1.92",
    "ffn025": "145 M · 1.33× · 15.0 GB · 2.41", "linear": "107 M · 1.32× · 14.4 GB · 2.07",
    "ffn050": "189 M · 1.15× · 15.8 GB · 2.40",
}
PAPER_LR_AVSR = {  # LR-SMS Table III (AVSR, clean WER) and MSRS's dense AVSR
    "full": "268 M · 0.8 (MSRS dense)", "linear": "132 M · 0.9",
}
BENCH_SIZES = {  # benchmark model per table: the study's models, and the paper's width
    "lrsms_asr": ["--output_size", "128", "--attention_heads", "4", "--linear_units", "256",
                  "--input_size", "96"],
    "lrsms_avsr": ["--output_size", "128", "--attention_heads", "4", "--linear_units", "256",
                   "--input_size", "128"],
}


def bench_commands(table: str, knobs: Knobs) -> Dict[str, List[str]]:
    """The two benchmark runs of an LR-SMS table: the study's model, and the
    paper's width (768, 2+1 blocks standing in for 12+6, see the benchmark)."""
    variants = ",".join(LR_BENCH_VARIANT.values())
    base = [sys.executable, str(REPO / "bench" / "train_step.py"), "--variants", variants]
    dec = str(max(1, LR_DEPTH // 2))
    study = base + BENCH_SIZES[table] + [
        "--encoder_blocks", str(LR_DEPTH), "--decoder_blocks", dec,
        "--full_encoder_blocks", str(LR_DEPTH), "--full_decoder_blocks", dec,
        "--vocab_size", "50", "--batch_size", "8", "--frames", "75", "--tokens", "15"]
    if knobs.ngpu > 0:
        study += ["--device", "cuda"]
    if knobs.micro:
        return {"study": study + ["--repeats", "1", "--warmup", "0", "--no_memory",
                                  "--no_profile"]}
    paper = base + ["--repeats", "3"] + (["--device", "cuda"] if knobs.ngpu > 0 else [])
    return {"study": study + ["--repeats", "10"], "paper": paper}


def run_benchmarks(table: str, knobs: Knobs) -> None:
    """Step-time and memory ratios of the LR-SMS variants, side by side in one run each."""
    logs = knobs.recipe_dir / "exp" / "study_logs"
    for name, cmd in bench_commands(table, knobs).items():
        out = logs / f"bench_{table}_{name}.json"
        stamp = logs / f"bench_{table}_{name}.cmd"
        full = cmd + ["--out", str(out)]
        key = shlex.join(full[1:])
        if out.is_file() and stamp.is_file() and stamp.read_text(encoding="utf-8") == key:
            logger.info(f"benchmark {name} of {table}: done already ({out})")
            continue
        logger.info(f"benchmark {name} of {table}: {out}")
        env = _env(knobs)
        env["PYTHONPATH"] = f"{REPO}{os.pathsep}{env.get('PYTHONPATH', '')}"
        start = time.time()
        rc, cpu = run_logged(full, knobs.recipe_dir, logs / f"bench_{table}_{name}.log", env)
        if rc != 0:
            raise RuntimeError(f"benchmark {name} of {table} failed; see "
                               f"{logs / f'bench_{table}_{name}.log'}")
        _write_json(logs / f"bench_{table}_{name}.cost.json",
                    {"wall_s": round(time.time() - start, 1), "cpu_s": round(cpu, 1)})
        stamp.write_text(key, encoding="utf-8")


def rank_energy(recipe_dir: Path, results: Sequence[Mapping[str, Any]], table: str,
                fig_dir: Path) -> Tuple[Optional[str], Dict[int, Dict[str, Optional[float]]]]:
    """LR-SMS Fig. 3 for the full-rank models: the plot, and per seed the slope of
    the per-block 95 %-energy ratio against depth in the encoder and decoder."""
    from espnet_msrs.bin import plot_rank_energy

    models = [(r["seed"], recipe_dir / "exp" / r["tag"] / "train" / "valid.acc.ave.pth")
              for r in ok(results) if r["row"] == "Full rank"]
    models = [(s, m) for s, m in models if m.exists()]
    if not models:
        return None, {}
    out = fig_dir / f"{table}_rank_energy.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    data = plot_rank_energy.main(
        ["--checkpoint", *[f"seed{s}={m}" for s, m in models], "--out", str(out),
         "--json", str(recipe_dir / "results" / f"{table}_rank_energy.json"),
         "--title", "Full-rank model: fraction of singular vectors for 95 % energy"])
    slopes: Dict[int, Dict[str, Optional[float]]] = {}
    by_label = {entry["label"]: entry for entry in data["checkpoints"]}
    for seed, _ in models:
        families = by_label[f"seed{seed}"]["families"]
        per_sub = {}
        for sub in ("encoder", "decoder"):
            blocks: Dict[float, List[float]] = {}
            for group in ("mhsa", "ffn"):
                fam = families.get(f"{sub}.{group}")
                if fam:
                    for d, v in zip(fam["depth"], fam["mean_ratio"]):
                        blocks.setdefault(d, []).append(v)
            xs = sorted(blocks)
            per_sub[sub] = slope(xs, [statistics.fmean(blocks[x]) for x in xs])
        slopes[seed] = per_sub
    return f"figures/{out.name}", slopes


def report_lrsms(table: str, results: List[Dict[str, Any]], blind: float, fig_dir: Path,
                 recipe_dir: Path) -> Tuple[List[str], List[Dict[str, str]]]:
    modality = "audio" if table == "lrsms_asr" else "av"
    name = MODALITY_NAME[modality].upper()
    bench = {k: _read_json(recipe_dir / "exp" / "study_logs" / f"bench_{table}_{k}.json")
             for k in ("study", "paper")}
    lines = [f"{name} models of {LR_DEPTH} encoder / {max(1, LR_DEPTH // 2)} decoder blocks "
             "(the demo's tiny width); low rank on the encoder and decoder linears (LR-SMS "
             "eq. 1 SVD initialisation unless marked Kaiming). #Params: all parameters; "
             "Enc+dec: the parameters of the factorised sub-models' blocks. Step time and "
             "memory: ratio to full rank, measured side by side in one benchmark run "
             "(interleaved rounds, one thread; `study`: this model without its frontend; "
             "`paper width`: 768 wide, 2+1 blocks standing in for 12+6). WER: clean test set "
             "(and the mean over the five babble SNRs).", ""]
    rows = []
    variant_of = {label: key for key, (label, _) in LR_ROWS.items()}
    for label in dict.fromkeys(r["row"] for r in results):
        group = [r for r in results if r["row"] == label]
        key = variant_of.get(label.replace(" (Kaiming)", ""))
        c = row_cells(group, blind)
        good = ok(group)
        encdec = summarise([_encdec_params(recipe_dir, r) for r in good])
        noisy = summarise([statistics.fmean(v for k, v in r["wer_sets"].items() if "_snr" in k)
                           for r in good if any("_snr" in k for k in r["wer_sets"])])
        ratios = []
        for which in ("study", "paper"):
            lim = ((bench[which] or {}).get("against_limit") or {}).get(
                LR_BENCH_VARIANT.get(key, ""), {}) if "Kaiming" not in label else {}
            ratios += [f"{lim['step_ratio']:.2f}" if "step_ratio" in lim else "–",
                       f"{lim['memory_ratio']:.2f}" if "memory_ratio" in lim else "–"]
        note = status_note(group)
        paper = (PAPER_LR if modality == "audio" else PAPER_LR_AVSR).get(key, "–") \
            if "Kaiming" not in label else "Fig. 4"
        rows.append([label, c["params"], fmt_count(encdec["mean"]) if encdec else "–", *ratios,
                     c["wer"] + (f" ({note})" if note else ""), fmt_range(noisy), c["trainable"],
                     paper])
    lines += md_table(["Factorised layers", "#Params", "Enc+dec", "Step (study)", "Memory (study)",
                       "Step (paper width)", "Memory (paper width)", "WER clean (%)",
                       "WER babble (%)", "Trainable", "Paper"], rows) + [""]

    def w(variant, init=""):
        label = LR_ROWS[variant][0] + (f" ({init})" if init else "")
        return wers([r for r in results if r["row"] == label])

    verdicts = []
    full, linear = w("full"), w("linear")
    pr = [_encdec_params(recipe_dir, r) for r in ok(results) if r["row"] == LR_ROWS["linear"][0]]
    pf = [_encdec_params(recipe_dir, r) for r in ok(results) if r["row"] == LR_ROWS["full"][0]]
    share = (f"; enc+dec parameters {statistics.fmean(pr) / statistics.fmean(pf):.2f}× full rank"
             if pr and pf and all(pr) and all(pf) else "")
    verdicts.append(claim(f"Linear layer-wise rank keeps full-rank WER ({name})",
                          "1.99 → 2.07 (ASR, LRS3); 0.8 → 0.9 (AVSR)",
                          verdict_parity(linear, full),
                          f"linear {fmt_range(summarise(linear))} vs full "
                          f"{fmt_range(summarise(full))}{share}"))
    for variant in ("a025", "a012"):
        verdicts.append(claim(f"Linear rank has lower WER than uniform {LR_ROWS[variant][0]} "
                              f"({name})", "2.07 vs 2.47 / 2.48 (ASR, LRS3)",
                              verdict_lower(linear, w(variant)),
                              f"linear {fmt_range(summarise(linear))} vs "
                              f"{fmt_range(summarise(w(variant)))}"))
    if modality == "audio":
        verdicts.append(claim("Low-rank MHSA only (α = 0.12) keeps full-rank WER",
                              "1.92 vs 1.99", verdict_parity(w("mhsa012"), full),
                              f"{fmt_range(summarise(w('mhsa012')))} vs {fmt_range(summarise(full))}"))
        verdicts.append(claim("Low-rank FFN only (α = 0.25) costs WER", "2.41 vs 1.99",
                              verdict_lower(full, w("ffn025")),
                              f"full {fmt_range(summarise(full))} vs FFN "
                              f"{fmt_range(summarise(w('ffn025')))}"))
        verdicts.append(claim("MHSA tolerates low rank better than FFN (MHSA α = 0.12 vs FFN "
                              "α = 0.25)", "1.92 vs 2.41", verdict_lower(w("mhsa012"), w("ffn025")),
                              f"{fmt_range(summarise(w('mhsa012')))} vs "
                              f"{fmt_range(summarise(w('ffn025')))}"))
        per, ev = [], []
        for variant in ("ffn025", "ffn050"):
            svd, kai = w(variant), w(variant, "Kaiming")
            per.append(verdict_lower(svd, kai))
            ev.append(f"{LR_ROWS[variant][0]}: SVD {fmt_range(summarise(svd))} vs Kaiming "
                      f"{fmt_range(summarise(kai))}")
        verdicts.append(claim("SVD initialisation beats Kaiming (Fig. 4)",
                              "SVD lower WER at every α", combine(per), "; ".join(ev)))
    figure, slopes = rank_energy(recipe_dir, results, table, fig_dir)
    if figure:
        lines += [f"![LR-SMS Fig. 3 in miniature: rank by depth of the full-rank model]({figure})",
                  ""]
        flags = [s["encoder"] is not None and s["decoder"] is not None
                 and s["encoder"] > 0 and s["decoder"] > 0 for s in slopes.values()]
        against = [s["encoder"] is not None and s["decoder"] is not None
                   and s["encoder"] <= 0 and s["decoder"] <= 0 for s in slopes.values()]
        v = REPRODUCED if flags and all(flags) else (
            NOT_REPRODUCED if against and all(against) else INCONCLUSIVE)
        verdicts.append(claim(f"Trained ranks grow with depth (Fig. 3, {name})",
                              "near-linear growth in encoder and decoder", v,
                              "; ".join(f"seed {s}: slope encoder {v['encoder']:+.3f}, decoder "
                                        f"{v['decoder']:+.3f}" for s, v in slopes.items()
                                        if v["encoder"] is not None and v["decoder"] is not None)))
    lim = ((bench["paper"] or {}).get("against_limit") or {}).get(LR_BENCH_VARIANT["linear"])
    if lim and "step_ratio" in lim:
        lim_s = ((bench["study"] or {}).get("against_limit") or {}).get(LR_BENCH_VARIANT["linear"], {})
        fast = lim["step_ratio"] < 1 and lim.get("memory_ratio", 0) < 1
        verdicts.append(claim("Linear rank trains faster and with less memory than full rank "
                              "(paper width)", "1.32× faster, 14.4 vs 16.4 GB (ASR)",
                              REPRODUCED if fast else NOT_REPRODUCED,
                              f"step {lim['step_ratio']:.2f}×, memory "
                              f"{lim.get('memory_ratio', float('nan')):.2f}× of full rank; at the "
                              f"study's size: step {lim_s.get('step_ratio', float('nan')):.2f}×, "
                              f"memory {lim_s.get('memory_ratio', float('nan')):.2f}×"))
    return lines, verdicts


def _encdec_params(recipe_dir: Path, r: Mapping[str, Any]) -> Optional[int]:
    """Parameters of the encoder and decoder blocks of a decoded model."""
    import torch

    model = recipe_dir / "exp" / r["tag"] / "train" / "valid.acc.ave.pth"
    if not model.exists():
        return None
    from espnet_msrs.utils.safe_load import load_torch_file

    state = load_torch_file(model, what="model")
    return sum(t.numel() for k, t in state.items()
               if torch.is_tensor(t) and t.is_floating_point()
               and re.match(r"^(encoder\.encoders|decoder\.decoders)\.", k))


# ------------------------------------------------------------------ reports
def _machine() -> Dict[str, Any]:
    from espnet_msrs.utils.machine import cpu_model

    return {"cpu": cpu_model(), "cpus": os.cpu_count(), "host": platform.node(),
            "python": platform.python_version()}


def report_table(table: str, knobs: Knobs, cells: Sequence[Cell]) -> Dict[str, Any]:
    """Read the cells' artifacts; write results/<table>.{json,md} and the figures."""
    recipe_dir = knobs.recipe_dir
    blind = blind_wer(recipe_dir)["wer_blind"]
    results = [cell_result(cell, recipe_dir) for cell in cells]
    fig_dir = recipe_dir / "figures"
    if table == "table1":
        lines, verdicts = report_table1(results, blind, fig_dir)
    elif table == "table4":
        lines, verdicts = report_table4(results, blind, fig_dir, recipe_dir)
    elif table == "fig2":
        lines, verdicts = report_fig2(results, blind, fig_dir)
    else:
        lines, verdicts = report_lrsms(table, results, blind, fig_dir, recipe_dir)
    run = _read_json(recipe_dir / "exp" / "study_logs" / f"run_{table}.json") or {}
    codes = sorted({r["code"] for r in results if r.get("code")})
    cell_wall = sum(r["wall_s"] or 0 for r in results if r.get("wall_s"))
    cell_cpu = sum(r["cpu_s"] or 0 for r in results if r.get("cpu_s"))
    bench_cpu = sum((_read_json(recipe_dir / "exp" / "study_logs" /
                                f"bench_{table}_{k}.cost.json") or {}).get("cpu_s", 0)
                    for k in ("study", "paper"))
    status = {"ok": sum(r.get("status") == "ok" for r in results), "cells": len(results)}
    for r in results:  # the figures hold the series; keep the JSON small
        r.pop("grad_series", None)
    summary = {
        "table": table, "title": TABLE_TITLES[table], "generated": _now(),
        "wer_blind": blind, "micro": knobs.micro, "status": status, "codes": codes,
        "cell_wall_s": round(cell_wall, 1), "cell_cpu_s": round(cell_cpu, 1),
        "bench_cpu_s": round(bench_cpu, 1), "run": run, "machine": _machine(),
        "verdicts": verdicts, "markdown": lines, "cells": results,
    }
    _write_json(recipe_dir / "results" / f"{table}.json", summary)
    logger.info(f"report {table}: {status['ok']}/{status['cells']} cells with results -> "
                f"{recipe_dir / 'results' / (table + '.json')}")
    return summary


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def provenance_line(summary: Mapping[str, Any]) -> str:
    runs = [r for r in (summary.get("run") or {}).get("runs", []) if r.get("cells_run_now")]
    parts = [f"{summary['status']['ok']}/{summary['status']['cells']} cells with results",
             f"code {', '.join(summary['codes']) or 'unknown'}",
             f"sum of cell wall times {summary['cell_wall_s'] / 60:.0f} min"]
    cpu = summary.get("cell_cpu_s", 0) + summary.get("bench_cpu_s", 0)
    if cpu:  # the machine-independent cost: CPU time, and that time spread over 2 idle cores
        parts.append(f"CPU time {cpu / 60:.0f} min"
                     + (f" (benchmarks {summary['bench_cpu_s'] / 60:.0f})"
                        if summary.get("bench_cpu_s") else "")
                     + f" = {cpu / 120:.0f} min on 2 idle cores")
    for r in runs:
        when = datetime.datetime.fromtimestamp(r["start"]).strftime("%Y-%m-%d %H:%M")
        parts.append(f"`run` {when}: {len(r['cells_run_now'])} cells in "
                     f"{r['wall_s'] / 60:.0f} min wall, {r.get('jobs')} jobs, load "
                     f"{r.get('load_start') or 0:.1f} → {r.get('load_end') or 0:.1f}")
    parts.append(f"report {summary['generated']}")
    return "; ".join(parts)


def table_state(summary: Mapping[str, Any]) -> str:
    """complete | PARTIAL | MICRO (a test run) | PROVISIONAL (mixed or modified code)."""
    if summary.get("micro"):
        return "MICRO (a test run: one epoch, one seed — not study numbers)"
    if summary["status"]["ok"] < summary["status"]["cells"]:
        return "PARTIAL"
    codes = summary.get("codes") or []
    if len(codes) != 1 or codes[0].endswith("-dirty"):
        return "PROVISIONAL (cells from several or uncommitted code versions)"
    return "complete"


STUDY_HEADER = """\
# STUDY — the MSRS and LR-SMS claims in miniature

What the MSRS paper (Interspeech 2024: Tables 1 and 4, Figs. 1–3) and the LR-SMS
paper ("Full-Rank No More": Tables I–II, Figs. 3–4) claim, re-run at CPU scale on
the synthetic GRID-like corpus (`egs2/synthgrid/study1`). The definitions — what
"fails to train" means, the seeds, the corpus, the verdict rules — are the
protocol in [README.md](README.md), committed before any study cell ran. Every
number below is read from the cells' recipe artifacts by `local/study.py report`;
verdicts are computed from those numbers by the protocol's rules.
"""


def assemble(recipe_dir: Path, tables: Sequence[str] = TABLES) -> Path:
    """Write STUDY.md from results/<table>.json."""
    summaries = {t: _read_json(recipe_dir / "results" / f"{t}.json") for t in tables}
    done = {t: s for t, s in summaries.items() if s}
    lines = [STUDY_HEADER]
    machine = next(iter(done.values()))["machine"] if done else _machine()
    blind = next(iter(done.values()))["wer_blind"] if done else None
    states = {t: table_state(s) for t, s in done.items()}
    lines += ["## Provenance", "",
              f"* Machine: {machine['cpu']}, {machine['cpus']} logical CPUs ({machine['host']}).",
              f"* Input-blind reference WER_blind = {blind} % → a run trains iff WER < "
              f"{blind - BLIND_MARGIN:.1f} %." if blind is not None else "* WER_blind: –",
              "* Tables (state; provenance):"]
    for t in tables:
        if t in done:
            lines.append(f"  * {TABLE_TITLES[t]} — **{states[t]}**; {provenance_line(done[t])}")
        else:
            lines.append(f"  * {TABLE_TITLES[t]} — **not run yet**")
    if done and all(s == "complete" for s in states.values()) and len(done) == len(tables) \
            and len({c for s in done.values() for c in s["codes"]}) == 1:
        lines.append("* All tables come from one code version: this is the full study.")
    else:
        lines.append("* Not (yet) the full study: see each table's state above.")
    lines += ["", "Commands: `cd egs2/synthgrid/study1 && ./run_study.sh` (all tables), or "
              "`local/<table>.sh` for one; see [README.md](README.md) for the knobs.", ""]
    lines += ["## Verdicts", ""]
    rows = []
    for t in tables:
        for v in (done.get(t) or {}).get("verdicts", []):
            rows.append([v["claim"], v["paper"], f"**{v['verdict']}**", v["evidence"]])
    lines += md_table(["Claim", "Paper", "Verdict", "Here"], rows) if rows else ["(none yet)"]
    lines.append("")
    discussion = recipe_dir / "DISCUSSION.md"
    if discussion.is_file():  # commentary written after reading the numbers
        lines += ["## Discussion (written after the run; the verdicts above are the rules')", "",
                  discussion.read_text(encoding="utf-8").strip(), ""]
    for t in tables:
        lines += [f"## {TABLE_TITLES[t]}", ""]
        if t not in done:
            lines += ["Not run yet.", ""]
            continue
        lines += [f"State: **{states[t]}** ({provenance_line(done[t])}).", ""]
        lines += done[t]["markdown"]
    out = recipe_dir / "STUDY.md"
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    os.replace(tmp, out)
    logger.info(f"assemble: {out}")
    return out


# ----------------------------------------------------------------------- CLI
def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="CPU-scale study of the MSRS and LR-SMS claims (see README.md)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("command", choices=("blind", "plan", "run", "report", "assemble"))
    parser.add_argument("table", nargs="?", choices=TABLES)
    parser.add_argument("--recipe_dir", type=Path, default=STUDY_DIR,
                        help="the study recipe directory (run.sh, conf/, exp/)")
    parser.add_argument("--jobs", type=int, default=2, help="cells run at the same time")
    parser.add_argument("--ngpu", type=int, default=0, help="GPUs per cell (run.sh --ngpu)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--depths", type=int, nargs="+", default=list(VSR_DEPTHS),
                        help="VSR encoder depths of every Table 1 row (Table 4 and Fig. 2 use "
                        "the deepest)")
    parser.add_argument("--dense_only_depths", type=int, nargs="*",
                        default=list(DENSE_ONLY_DEPTHS),
                        help="further depths of the sweep, Dense row only")
    parser.add_argument("--local_data_opts", default=None,
                        help="corpus options of stage 1 (default: run.sh's)")
    parser.add_argument("--run_args", default="",
                        help="extra options of run.sh for every cell, e.g. "
                        "'--dist_launcher torchrun --dist_nproc_per_node 4'")
    parser.add_argument("--micro", action="store_true",
                        help="one seed, one epoch, two cells (the test of the scripts)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    sys.path.insert(0, str(REPO))
    from espnet_msrs.utils.runtime import setup_logging

    setup_logging(logging.INFO)
    knobs = Knobs(recipe_dir=args.recipe_dir.resolve(), jobs=args.jobs, ngpu=args.ngpu,
                  micro=args.micro, local_data_opts=args.local_data_opts,
                  run_args=tuple(shlex.split(args.run_args)))
    if args.command == "blind":
        print(json.dumps(blind_wer(knobs.recipe_dir), indent=1))
        return 0
    if args.command == "assemble":
        assemble(knobs.recipe_dir)
        return 0
    if args.table is None:
        raise ValueError(f"{args.command} needs a table: {', '.join(TABLES)}")
    if args.micro:
        cells = micro_cells(args.table, min(args.depths))
    else:
        cells = table_cells(args.table, args.seeds, args.depths, args.dense_only_depths)
    if args.command == "plan":
        for cell in cells:
            print(f"{cell.tag}\t{shlex.join(cell_command(cell, knobs))}")
        return 0
    if args.command == "run":
        summary = run_table(args.table, knobs, cells)
        if args.table.startswith("lrsms"):
            run_benchmarks(args.table, knobs)
        return 1 if summary["failed"] else 0
    report_table(args.table, knobs, cells)
    return 0


if __name__ == "__main__":
    sys.exit(main())
