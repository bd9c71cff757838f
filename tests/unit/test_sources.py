import gzip
import hashlib
import shutil
import sqlite3
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from heartml.core import sources
from heartml.core.errors import DataSourceError


def test_bundled_heart_is_the_918_row_dataset(heart_raw):
    assert heart_raw.shape == (918, 12)
    assert heart_raw["HeartDisease"].value_counts().to_dict() == {1: 508, 0: 410}


def test_bundled_heart_failure_records_reads_thousands_separators():
    df = sources.read_source("bundled://heart_failure_records", {"thousands": ","})
    assert df.shape == (299, 13)
    assert df["platelets"].dtype.kind == "i" and df.loc[0, "platelets"] == 265000
    assert df["DEATH_EVENT"].value_counts().to_dict() == {0: 203, 1: 96}


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
    with pytest.raises(DataSourceError, match="known: heart, heart_failure_records"):
        sources.read_source("bundled://nope")


def test_csv_parquet_and_gzip_files_read_the_same(tmp_path, heart_raw):
    heart_raw.to_csv(tmp_path / "h.csv", index=False)
    heart_raw.to_parquet(tmp_path / "h.parquet", index=False)
    (tmp_path / "h.csv.gz").write_bytes(gzip.compress((tmp_path / "h.csv").read_bytes()))
    (tmp_path / "h.bin").write_bytes((tmp_path / "h.parquet").read_bytes())
    from_csv = sources.read_source(str(tmp_path / "h.csv"))
    pd.testing.assert_frame_equal(from_csv, heart_raw)
    for uri in (f"file://{tmp_path / 'h.parquet'}", str(tmp_path / "h.csv.gz"), f"{tmp_path / 'h.bin'}#format=parquet"):
        pd.testing.assert_frame_equal(sources.read_source(uri), from_csv)


def test_a_local_file_can_be_pinned_by_sha256(tmp_path, heart_raw):
    path = tmp_path / "h.csv"
    heart_raw.to_csv(path, index=False)
    digest = sources.sha256_of_file(path)
    assert len(sources.read_source(f"{path}#sha256={digest}")) == 918
    with pytest.raises(DataSourceError, match=rf"^{path}: sha256 {digest} does not match the pinned 0+$"):
        sources.read_source(f"{path}#sha256={'0' * 64}")


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(DataSourceError, match=r"nothere\.csv: file not found"):
        sources.read_source(str(tmp_path / "nothere.csv"))


@pytest.mark.parametrize("content, message", [
    (b"", r"empty\.csv: file is empty \(0 bytes\)"),
    (b"\n\n  \n", r"empty\.csv: file is empty"),
    (b"Age,Sex\n40,M\n41,\xe9\n",
     r"empty\.csv: not utf-8 text \(invalid continuation byte: byte 0xe9 at offset 16, line 3\)"),
    (b'Age,Sex\n40,"M\n', r"empty\.csv: not a well-formed CSV file"),
])
def test_unreadable_files_give_one_clear_line(tmp_path, content, message):
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(DataSourceError, match=message) as caught:
        sources.read_source(str(path))
    assert len(caught.value.lines) == 1 and "\n" not in caught.value.lines[0]


def test_latin1_file_reads_when_the_dataset_declares_its_encoding(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("name,value\nJos\xe9,1\n".encode("latin-1"))
    assert sources.read_source(str(path), {"encoding": "latin-1"}).loc[0, "name"] == "José"


def test_damaged_parquet_is_reported(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(DataSourceError, match=r"broken\.parquet: not a readable Parquet file"):
        sources.read_source(str(path))


def test_unsupported_scheme_is_named():
    with pytest.raises(DataSourceError, match=r"unsupported source scheme 'ftp://'"):
        sources.read_source("ftp://example.org/heart.csv")


def test_display_uri_masks_passwords_and_signatures():
    assert sources.display_uri("postgresql://ml:s3cret@db:5432/clinic#table=heart") == \
        "postgresql://ml:***@db:5432/clinic#table=heart"
    assert sources.display_uri("https://acct.blob.core.windows.net/c/h.csv?sv=2024&sig=abc%2F#sha256=00") == \
        "https://acct.blob.core.windows.net/c/h.csv?sv=2024&sig=***#sha256=00"
    assert sources.display_uri("data/heart.csv") == "data/heart.csv"
    assert sources.display_uri("sqlite:///rel.db#table=t") == "sqlite:///rel.db#table=t"
    assert sources.display_uri("az://c/h.csv?key=1#sha256=ab") == "az://c/h.csv?key=***#sha256=ab"


def test_relative_paths_become_absolute_against_the_callers_directory(tmp_path):
    assert sources.absolute_local_source("data/h.csv#sha256=ab", tmp_path) == f"{tmp_path}/data/h.csv#sha256=ab"
    assert sources.absolute_local_source("sqlite:///db/x.db#table=t", tmp_path) == f"sqlite:///{tmp_path}/db/x.db#table=t"
    for uri in ("bundled://heart", "sqlite:////abs/x.db#table=t", "sqlite:///:memory:#query=SELECT 1", "/abs/h.csv",
                "https://h/x.csv#sha256=00", "postgresql://u:p@h/db#table=t"):
        assert sources.absolute_local_source(uri, tmp_path) == uri


# --- SQL through SQLAlchemy (a real SQLite file) ------------------------------------------------------------

@pytest.fixture
def heart_db(tmp_path, heart_raw):
    path = tmp_path / "clinic.db"
    with sqlite3.connect(path) as connection:
        heart_raw.to_sql("heart", connection, index=False)
    return path


def test_sql_table_and_query_read_the_same_rows(heart_db, heart_raw):
    table = sources.read_source(f"sqlite:///{heart_db}#table=heart")
    pd.testing.assert_frame_equal(table, heart_raw)
    query = sources.read_source(f"sqlite:///{heart_db}#query=SELECT * FROM heart WHERE Sex = 'F' AND Age >= 50")
    expected = heart_raw[(heart_raw["Sex"] == "F") & (heart_raw["Age"] >= 50)].reset_index(drop=True)
    pd.testing.assert_frame_equal(query, expected)
    assert len(query) == 122


@pytest.mark.parametrize("fragment, message", [
    ("#table=patients", r"table 'patients' not found"),
    ("#query=SELECT nope FROM heart", r"database error: no such column: nope"),
    ("", r"name exactly one of #table=NAME or #query=SELECT"),
])
def test_sql_problems_are_one_line(heart_db, fragment, message):
    with pytest.raises(DataSourceError, match=message):
        sources.read_source(f"sqlite:///{heart_db}{fragment}")


def test_a_mistyped_sqlite_path_is_not_created(tmp_path):
    with pytest.raises(DataSourceError, match=r"database file .*typo\.db not found"):
        sources.read_source(f"sqlite:///{tmp_path / 'typo.db'}#table=heart")
    assert not (tmp_path / "typo.db").exists()


def test_postgresql_urls_take_the_same_sqlalchemy_path_and_hide_the_password():
    # psycopg2 (the team stack's MLflow driver) is installed; nothing listens on port 1: the error is one line,
    # names the URL without the password and says what the driver said.
    with pytest.raises(DataSourceError) as caught:
        sources.read_source("postgresql://ml:s3cret@127.0.0.1:1/clinic#table=heart")
    (line,) = caught.value.lines
    assert line.startswith("postgresql://ml:***@127.0.0.1:1/clinic#table=heart: database error: connection to server")
    assert "refused" in line and "s3cret" not in line


# --- http(s) with a pinned sha256 and a local cache (a real server on loopback) -----------------------------

class _CountingHandler(SimpleHTTPRequestHandler):
    requests = 0

    def do_GET(self):
        type(self).requests += 1
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_root(tmp_path, monkeypatch, heart_raw):
    root = tmp_path / "www"
    root.mkdir()
    heart_raw.to_csv(root / "heart.csv", index=False)
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(sources.CACHE_ENV, str(tmp_path / "cache"))
    handler = type("Handler", (_CountingHandler,), {"requests": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}", handler, server
    server.shutdown()
    server.server_close()


def test_http_source_downloads_once_then_reads_the_cache(http_root, heart_raw, tmp_path):
    root, base, handler, server = http_root
    digest = sources.sha256_of_file(root / "heart.csv")
    uri = f"{base}/heart.csv#sha256={digest}"
    pd.testing.assert_frame_equal(sources.read_source(uri), heart_raw)
    assert handler.requests == 1
    assert (tmp_path / "cache" / f"{digest}.csv").is_file()
    server.shutdown()  # the cached copy is enough from now on
    pd.testing.assert_frame_equal(sources.read_source(uri), heart_raw)
    assert handler.requests == 1


def test_http_hash_mismatch_fails_and_caches_nothing(http_root, tmp_path):
    root, base, handler, _ = http_root
    wrong = hashlib.sha256(b"something else").hexdigest()
    actual = sources.sha256_of_file(root / "heart.csv")
    with pytest.raises(DataSourceError) as caught:
        sources.read_source(f"{base}/heart.csv#sha256={wrong}")
    assert caught.value.lines == [f"{base}/heart.csv: sha256 {actual} does not match the pinned {wrong}"]
    assert not list((tmp_path / "cache").glob("*"))


def test_http_source_must_be_pinned_and_reports_http_errors(http_root):
    _, base, handler, _ = http_root
    with pytest.raises(DataSourceError, match=r"rule 'pinned sha256' failed: append #sha256="):
        sources.read_source(f"{base}/heart.csv")
    assert handler.requests == 0
    with pytest.raises(DataSourceError, match=r"/missing\.csv: download failed: HTTP 404"):
        sources.read_source(f"{base}/missing.csv#sha256={'a' * 64}")


def test_azure_source_without_credentials_says_what_to_set(monkeypatch):
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(DataSourceError, match=r"^az://data/heart\.csv: no Azure storage account configured: set "
                                              r"AZURE_STORAGE_CONNECTION_STRING"):
        sources.read_source("az://data/heart.csv")


def test_sha256_of_file(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"abc")
    assert sources.sha256_of_file(path) == hashlib.sha256(b"abc").hexdigest()
