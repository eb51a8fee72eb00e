"""The storage `--storage` names (SPEC §1): the data dir's `files/` by default,
another folder (`file://PATH`), or an S3 bucket (`s3://BUCKET/PREFIX`). Attempts
work in the data dir's `work/` whichever it is."""

from __future__ import annotations

from pathlib import Path

from genwire.interfaces import ArtifactStorage
from genwire.storage.local import LocalStorage


class StorageNotInstalled(Exception):
    """The storage asked for needs a package that is not installed."""


def open_storage(url: str | None, data_dir: Path) -> ArtifactStorage:
    """`url` as `genwire.config.check_storage_url` let it through."""
    work_dir = data_dir / "work"
    if url is None:
        return LocalStorage(data_dir / "files", work_dir)
    if url.startswith("file://"):
        return LocalStorage(Path(url.removeprefix("file://")), work_dir)
    try:
        from genwire.storage.s3 import S3Storage
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] not in {"boto3", "botocore", "s3transfer"}:
            raise
        raise StorageNotInstalled(
            f"--storage {url} needs boto3 ({error}): pip install 'genwire[s3]'"
        ) from None
    return S3Storage.from_url(url, work_dir)
