import pandas as pd
import pytest

from heartml.dataset import load_dataset_spec
from heartml.sources import read_source
from tests.conftest import ROOT


@pytest.fixture(scope="session")
def heart_spec():
    return load_dataset_spec(ROOT / "configs" / "datasets" / "heart.yaml")


@pytest.fixture
def heart_raw(heart_spec) -> pd.DataFrame:
    return read_source("bundled://heart", heart_spec.read_options)
