"""Session fixture: a real S3-compatible server (moto's server, from PyPI) on a free loopback port, with a bucket.

moto's server speaks the S3 REST API over HTTP and accepts any access key; the tests give it made-up ones, which
also lets them check that the key never leaves the ZenML secret. Stopped by its process id.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest
import requests

from tests.ports import free_port


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    bucket: str
    access_key_id: str
    secret_access_key: str

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1",
                            aws_access_key_id=self.access_key_id, aws_secret_access_key=self.secret_access_key)

    def keys(self, prefix: str = "") -> list:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    port = free_port()
    log = (tmp_path_factory.mktemp("s3") / "moto.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = S3Server(endpoint_url=f"http://127.0.0.1:{port}", bucket="zenml-artifacts",
                      access_key_id="AKIA" + secrets.token_hex(8).upper(),
                      secret_access_key=secrets.token_urlsafe(30))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{server.endpoint_url}/moto-api/", timeout=2)
                break
            except requests.RequestException:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"moto's S3 server did not start on port {port}") from None
                time.sleep(0.2)
        server.client().create_bucket(Bucket=server.bucket)  # the bucket exists before the stack uses it
        yield server
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
