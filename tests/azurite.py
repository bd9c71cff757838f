"""Session fixture: a real Azurite blob endpoint on a free loopback port, with its data in a temporary folder.

Started and stopped (by its process id) through heartml.platform.azurite, the same code `python run.py --stack azurite`
and `python run.py azurite` use. Import the fixture into a conftest.py to use it: `from tests.azurite import azurite`.
"""

from __future__ import annotations

import pytest

from tests.ports import free_port


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    from heartml.platform import azurite as azurite_service

    endpoint = azurite_service.Azurite(host="127.0.0.1", port=free_port(),
                                       location=tmp_path_factory.mktemp("azurite-data"))
    azurite_service.start(endpoint)
    try:
        yield endpoint
    finally:
        azurite_service.stop(endpoint)


def blob_names(endpoint, container: str, prefix: str = "") -> list:
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient.from_connection_string(endpoint.connection_string).get_container_client(container)
    return [blob.name for blob in client.list_blobs(name_starts_with=prefix or None)]
