"""genwire: long generative-media jobs whose every update reaches the caller."""

from genwire.client import ApiError, Client

__version__ = "0.1.0"

__all__ = ["ApiError", "Client", "__version__"]
