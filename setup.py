"""Packaging for espnet_msrs (Python 3.11, espnet 202511)."""

from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
requirements = [
    line.split("#")[0].strip()
    for line in (here / "requirements.txt").read_text().splitlines()
    if line.split("#")[0].strip()
]

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
    python_requires=">=3.11,<3.12",
    install_requires=requirements,
    extras_require={"test": ["pytest==8.*"]},
    include_package_data=True,
)
