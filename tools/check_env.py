#!/usr/bin/env python3
"""Check that the environment is the locked one and that its core imports work.

Run by ``make env`` right after installing (``python tools/check_env.py
requirements.lock``). It fails at once, naming what is wrong, when

* a package of the lock is missing or installed at another version, or
* torch, torchaudio (with its compiled extension), PyAV, sentencepiece and
  ``espnet2.tasks.asr`` do not import together in one process (e.g. a
  torchaudio built for another torch: ``undefined symbol: ...``).
"""

import argparse
import importlib
import importlib.metadata
import re
import sys
from pathlib import Path
from typing import Dict, List

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> Dict[str, str]:
    """``{normalised name: version}`` of every ``name==version`` line of a lock."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = _PIN.match(line.strip())
        if m:
            pins[_normalise(m.group(1))] = m.group(2)
    if not pins:
        raise SystemExit(f"check_env: {path} holds no 'name==version' lines")
    return pins


def version_mismatches(pins: Dict[str, str]) -> List[str]:
    """One line per locked package that is missing or at another version."""
    installed = {
        _normalise(d.metadata["Name"]): d.version
        for d in importlib.metadata.distributions()
        if d.metadata["Name"]
    }
    problems = []
    for name, want in sorted(pins.items()):
        have = installed.get(name)
        if have is None:
            problems.append(f"{name}: locked at {want}, not installed")
        elif have != want:
            problems.append(f"{name}: locked at {want}, installed {have}")
    return problems


def import_problems() -> List[str]:
    """Import the core stack in one process; one line per failure."""
    problems = []
    steps = [
        ("torch", "import torch"),
        ("torchaudio", "import torchaudio"),
        ("torchaudio compiled extension",
         "import torchaudio._extension as e\n"
         "if not e._IS_TORCHAUDIO_EXT_AVAILABLE: raise ImportError('libtorchaudio did not load')"),
        ("torchaudio resample", "import torch, torchaudio.functional as F; "
         "F.resample(torch.zeros(1, 160), 8000, 16000)"),
        ("PyAV", "import av; av.codec.Codec('h264', 'w')"),
        ("sentencepiece", "import sentencepiece"),
        # as our entry points do: ESPnet's import tries nltk downloads (offline: errors)
        ("espnet2.tasks.asr", "from espnet_msrs.utils.runtime import disable_nltk_downloads\n"
         "disable_nltk_downloads()\nimport espnet2.tasks.asr"),
    ]
    for what, code in steps:
        try:
            exec(code, {})
        except Exception as exc:  # noqa: BLE001 - reported, then we fail
            problems.append(f"{what}: {type(exc).__name__}: {exc}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lock", type=Path, help="the lock file, e.g. requirements.lock")
    args = parser.parse_args(argv)
    problems = version_mismatches(read_lock(args.lock))
    if problems:
        print(f"check_env: the environment differs from {args.lock}:", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        print("  fix: make clean-env && make env", file=sys.stderr)
        return 1
    problems = import_problems()
    if problems:
        print("check_env: the core packages do not import together:", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    import torch

    print(
        f"check_env: ok ({len(read_lock(args.lock))} locked packages; "
        f"torch {torch.__version__}, espnet2.tasks.asr imports)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
