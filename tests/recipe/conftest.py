"""Fixtures of the recipe tests shared by several modules."""

import pytest


@pytest.fixture(scope="session")
def micro_data(tmp_path_factory):
    """Stages 1-7 of the synthgrid demo recipe on the micro corpus, once per
    session (:func:`tests.recipe.fixtures.prepare_micro_data`); read-only:
    a test works on a copy (:func:`tests.recipe.fixtures.micro_recipe`)."""
    from tests.recipe.fixtures import prepare_micro_data

    return prepare_micro_data(tmp_path_factory.mktemp("micro_data"))
