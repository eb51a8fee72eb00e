"""genwire: long generative-media jobs whose every update reaches the caller."""

from genwire.client import (
    ApiError,
    AsyncClient,
    Client,
    GenwireError,
    Job,
    Project,
    Timeout,
    TransportFailed,
)

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "AsyncClient",
    "Client",
    "GenwireError",
    "Job",
    "Project",
    "Timeout",
    "TransportFailed",
    "__version__",
]
