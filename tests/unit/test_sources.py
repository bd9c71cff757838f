import hashlib
import shutil

import pandas as pd
import pytest

from heartml import sources
from heartml.errors import DataSourceError


def test_bundled_heart_is_the_918_row_dataset(heart_raw):
    assert heart_raw.shape == (918, 12)
    assert heart_raw["HeartDisease"].value_counts().to_dict() == {1: 508, 0: 410}


def test_bundled_file_hash_is_verified(tmp_path, monkeypatch):
    real = sources.bundled_path("heart")
    package_dir = tmp_path / "fakepkg"
    (package_dir / "data").mkdir(parents=True)
    (package_dir / "__init__.py").write_text("")
    tampered = package_dir / "data" / "Heart_Disease.csv"
    shutil.copy(real, tampered)
    with tampered.open("a") as handle:
        handle.write("40,M,ATA,140,289,0,Normal,172,N,0,Up,0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = sources.BUNDLED["heart"]
    monkeypatch.setitem(sources.BUNDLED, "heart", sources.BundledDataset(
        package="fakepkg", resource=entry.resource, sha256=entry.sha256, license=entry.license, credit=entry.credit))
    with pytest.raises(DataSourceError, match="does not match the pinned"):
        sources.bundled_path("heart")


def test_unknown_bundled_name_lists_the_known_ones():
    with pytest.raises(DataSourceError, match="known: heart"):
        sources.read_source("bundled://nope")


def test_csv_and_parquet_files_read_the_same(tmp_path, heart_raw):
    heart_raw.to_csv(tmp_path / "h.csv", index=False)
    heart_raw.to_parquet(tmp_path / "h.parquet", index=False)
    from_csv = sources.read_source(str(tmp_path / "h.csv"))
    from_parquet = sources.read_source(f"file://{tmp_path / 'h.parquet'}")
    pd.testing.assert_frame_equal(from_csv, from_parquet)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(DataSourceError, match=r"nothere\.csv: file not found"):
        sources.read_source(str(tmp_path / "nothere.csv"))


def test_sha256_of_file(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"abc")
    assert sources.sha256_of_file(path) == hashlib.sha256(b"abc").hexdigest()
