"""Packaging for espnet_msrs (Python 3.11, espnet2).

A library declares compatible ranges; the application environment that was
tested (``make env``) is pinned exactly, with hashes, in ``requirements.lock``.
"""

from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent

setup(
    name="espnet_msrs",
    version="0.1.0",
    description=(
        "MSRS sparse-mask and LR-SMS low-rank training of ASR, VSR and AVSR "
        "models from scratch, as an ESPnet extension"
    ),
    long_description=(here / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["espnet_msrs", "espnet_msrs.*"]),
    python_requires=">=3.10,<3.12",
    install_requires=[
        "torch>=2.4,<2.13",
        # espnet2.tasks.asr imports torchaudio and einops without declaring them
        "torchaudio>=2.4,<2.13",
        "einops>=0.6",
        "espnet>=202412",
        "sentencepiece>=0.1.99",
        "kaldiio>=2.18",
        "soundfile>=0.12",
        "av>=12",
        "jiwer>=3.0",
        "tensorboard>=2.14",
    ],
    extras_require={
        # model zoo packing/loading (stage 13); install with --no-deps where it
        # would re-resolve torch
        "zoo": ["espnet_model_zoo>=0.1.7"],
        # synthetic demo corpus, study and analysis plots
        "demo": ["espeakng-loader>=0.2,<0.3", "matplotlib>=3.7"],
        "test": ["pytest>=8"],
    },
    include_package_data=True,
)
