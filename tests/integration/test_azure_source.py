"""az:// sources read through adlfs from a real Azurite blob endpoint on loopback."""

import pandas as pd
import pytest

from heartml.core.errors import DataSourceError
from heartml.core.sources import read_source
from tests.azurite import azurite  # noqa: F401 (fixture)

pytestmark = pytest.mark.azurite


@pytest.fixture
def heart_raw():
    return read_source("bundled://heart")


@pytest.fixture
def heart_container(azurite, monkeypatch, heart_raw):  # noqa: F811
    from azure.storage.blob import BlobServiceClient

    for name in ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.get_container_client("clinical-data")
    if not container.exists():
        container.create_container()
    container.upload_blob("heart/2026/heart.csv", heart_raw.to_csv(index=False).encode(), overwrite=True)
    container.upload_blob("heart/2026/heart.parquet", heart_raw.to_parquet(index=False), overwrite=True)
    return container


def test_csv_and_parquet_blobs_read_like_the_bundled_file(heart_container, heart_raw):
    pd.testing.assert_frame_equal(read_source("az://clinical-data/heart/2026/heart.csv"), heart_raw)
    pd.testing.assert_frame_equal(read_source("az://clinical-data/heart/2026/heart.parquet"), heart_raw)


def test_missing_blob_and_pinned_hash(heart_container):
    with pytest.raises(DataSourceError, match=r"^az://clinical-data/heart/nope\.csv: blob not found$"):
        read_source("az://clinical-data/heart/nope.csv")
    with pytest.raises(DataSourceError, match=r"az://clinical-data/heart/2026/heart\.csv: sha256 [0-9a-f]{64} does "
                                              r"not match the pinned 0+$"):
        read_source(f"az://clinical-data/heart/2026/heart.csv#sha256={'0' * 64}")
