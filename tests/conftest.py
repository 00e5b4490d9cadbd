"""Session-wide fixtures (created lazily, only for tests that ask for them)."""

import pytest


@pytest.fixture(scope="session")
def micro_exp(tmp_path_factory):
    """A finished 2-epoch ESPnet training on the tiny corpus
    (:func:`tests.helpers.micro_model.train_micro_model`); read-only: copy
    what a test changes."""
    from tests.helpers.micro_model import train_micro_model

    return train_micro_model(tmp_path_factory.mktemp("micro_exp"))


@pytest.fixture(scope="session")
def micro_zip(micro_exp, tmp_path_factory):
    """The micro model packed by ``espnet2.bin.pack`` (read-only)."""
    from tests.helpers.micro_model import pack_model

    out = tmp_path_factory.mktemp("micro_zip") / "model.zip"
    return pack_model(micro_exp["config"], micro_exp["model"], out)
