"""Where artifacts' bytes live: a local folder (`local.py`) or an S3 bucket (`s3.py`,
with the `s3` extra), as `--storage` says (`opening.py`). Both implement
`ArtifactStorage`; the API streams from either with the same Range and ETag."""

from genwire.interfaces import ArtifactStorage
from genwire.storage.base import StoredFile, safe_name
from genwire.storage.local import LocalStorage
from genwire.storage.opening import StorageNotInstalled, open_storage

__all__ = [
    "ArtifactStorage",
    "LocalStorage",
    "StorageNotInstalled",
    "StoredFile",
    "open_storage",
    "safe_name",
]
