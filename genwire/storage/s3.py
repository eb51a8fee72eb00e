"""Artifacts in a bucket of any S3-compatible store (AWS, MinIO, R2, Ceph…):
`--storage s3://BUCKET/PREFIX`. The endpoint, credentials and region are boto3's
own settings (`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`, `AWS_PROFILE`, `~/.aws/…`), so
genwire names none of them.

Every method blocks: code on the event loop calls it in a thread. The store's
failures are raised as `StorageUnavailable`, the cause kept.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from boto3.exceptions import Boto3Error
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from genwire.errors import StorageUnavailable
from genwire.storage.base import (
    READ_CHUNK_BYTES,
    StoredFile,
    artifact_path,
    check_inside,
    check_source,
    media_type_of,
    sha256_of,
)
from genwire.storage.scratch import ScratchDirs

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})


class S3Storage:
    def __init__(self, bucket: str, prefix: str, work_dir: Path) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._scratch = ScratchDirs(work_dir)
        # An API node holds one connection per download it streams: more than
        # botocore's 10 would be opened and thrown away again.
        self._client: S3Client = boto3.session.Session().client(
            "s3", config=Config(max_pool_connections=64, connect_timeout=10)
        )

    @classmethod
    def from_url(cls, url: str, work_dir: Path) -> S3Storage:
        """`s3://BUCKET/PREFIX` (the prefix may be empty or hold several `/` levels)."""
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        return cls(bucket, prefix, work_dir)

    def put(
        self, source: Path, job_id: str, artifact_id: str, name: str, media_type: str | None
    ) -> StoredFile:
        """Upload `source` (in parts when large: boto3's managed transfer), then delete it."""
        check_source(source)
        path = artifact_path(job_id, artifact_id, name)
        stored = StoredFile(
            path=path,
            size_bytes=source.stat().st_size,
            sha256=sha256_of(source),
            media_type=media_type_of(name, media_type),
        )
        with _unavailable(f"storing {path}"):
            self._client.upload_file(
                str(source),
                self.bucket,
                self._key(path),
                ExtraArgs={"ContentType": stored.media_type, "Metadata": {"sha256": stored.sha256}},
            )
        source.unlink()
        return stored

    def remove(self, path: str) -> None:
        with _unavailable(f"removing {path}"):
            self._client.delete_object(Bucket=self.bucket, Key=self._key(path))

    def size_of(self, path: str) -> int | None:
        with _unavailable(f"looking up {path}"):
            try:
                head = self._client.head_object(Bucket=self.bucket, Key=self._key(path))
            except ClientError as error:
                if _is_missing(error):
                    return None
                raise
        return head["ContentLength"]

    def read(self, path: str, start: int, end: int) -> Generator[bytes, None, None]:
        if start >= end:
            return
        key = self._key(path)
        with _unavailable(f"reading {path}"):
            answer = self._client.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end - 1}"
            )
            body = answer["Body"]
            try:
                yield from body.iter_chunks(READ_CHUNK_BYTES)
            finally:
                body.close()

    def scratch_dir(self, job_id: str, attempt: int) -> Path:
        return self._scratch.create(job_id, attempt)

    def discard_scratch(self, job_id: str, attempt: int) -> None:
        self._scratch.discard(job_id, attempt)

    def _key(self, path: str) -> str:
        relative = str(check_inside(path))
        return f"{self.prefix}/{relative}" if self.prefix else relative


@contextmanager
def _unavailable(what: str) -> Iterator[None]:
    try:
        yield
    except (BotoCoreError, Boto3Error, ClientError) as error:
        raise StorageUnavailable(f"{what} failed: {error}") from error


def _is_missing(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in _MISSING
