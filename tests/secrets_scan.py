"""Searching for secrets where they must not be: files (archives and Parquet unpacked), blobs, MLflow params and tags.
Shared by the secrets scans of the azurite/azure stacks and of the team stack."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from pathlib import Path
from typing import Iterator, Tuple
from urllib.parse import quote


def forms(value: str) -> Tuple[bytes, ...]:
    return tuple({value.encode(), quote(value, safe="").encode()})


def unpacked(where: str, content: bytes) -> Iterator[Tuple[str, bytes]]:
    """The content as stored, or for an archive each file in it: ZenML stores folders as .tar.gz, which would
    hide their text from a byte search. Parquet tables come with their cells as text too."""
    if content[:2] == b"\x1f\x8b":
        yield from unpacked(where, gzip.decompress(content))
    elif content[257:262] == b"ustar":
        with tarfile.open(fileobj=io.BytesIO(content)) as archive:
            for member in archive.getmembers():
                if member.isfile():
                    yield from unpacked(f"{where}/{member.name}", archive.extractfile(member).read())
    elif content[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            for name in archive.namelist():
                yield from unpacked(f"{where}/{name}", archive.read(name))
    elif content[:4] == b"PAR1":
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(content))
        yield where, content + (str(table.schema.metadata) + table.to_pandas().to_csv()).encode()
    else:
        yield where, content


def files(folder: Path) -> Iterator[Tuple[str, bytes]]:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield from unpacked(str(path), path.read_bytes())


def blobs(endpoint) -> Iterator[Tuple[str, bytes]]:
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(endpoint.connection_string)
    for container in service.list_containers():
        client = service.get_container_client(container.name)
        for blob in client.list_blobs():
            yield from unpacked(f"az://{container.name}/{blob.name}", client.download_blob(blob.name).readall())


def mlflow_values(client) -> Iterator[Tuple[str, bytes]]:
    """Every param and tag of every run, registered model and model version the MlflowClient can see."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    for run in client.search_runs(experiments, max_results=5000):
        for kind, values in (("param", run.data.params), ("tag", run.data.tags)):
            for key, value in values.items():
                yield f"MLflow run {run.info.run_name} {kind} {key}", f"{key}={value}".encode()
    for model in client.search_registered_models():
        for key, value in model.tags.items():
            yield f"registered model {model.name} tag {key}", f"{key}={value}".encode()
        for version in client.search_model_versions(f"name = '{model.name}'"):
            for key, value in version.tags.items():
                yield f"{model.name} v{version.version} tag {key}", f"{key}={value}".encode()
