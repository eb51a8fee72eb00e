"""A real S3 server for the tests: moto's, speaking the S3 protocol on a free
loopback port from a thread of the test process. genwire's boto3 finds it through
the standard `AWS_*` variables, as a deployment's finds its bucket."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
import pytest
from moto.server import ThreadedMotoServer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class S3Server:
    """One moto server; stopped and started again on the same port, it keeps its
    buckets (moto holds them in the process, not in the server)."""

    def __init__(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request
        self.port = 0
        self._server: ThreadedMotoServer | None = None
        self.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        server.start()
        self.port = server.get_host_and_port()[1]
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


@dataclass(frozen=True)
class Bucket:
    """A fresh bucket of the test's own, with boto3 configured to reach it."""

    name: str
    client: S3Client

    def url(self, prefix: str = "artifacts") -> str:
        return f"s3://{self.name}/{prefix}"

    def keys(self) -> list[str]:
        listing = self.client.list_objects_v2(Bucket=self.name)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def content(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()


def new_bucket(server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    """Point the standard AWS variables at `server` (and away from any real account),
    then create a bucket there."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "genwire-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "genwire-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/genwire-test-aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/genwire-test-credentials")
    # One try per call: a stopped server fails at once, not after backed-off retries.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    client = boto3.session.Session().client("s3")
    name = f"genwire-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return Bucket(name, client)
