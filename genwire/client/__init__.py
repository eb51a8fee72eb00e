"""The Python client of the genwire HTTP API (SPEC §6); it never imports the server."""

from genwire.client.sync import ApiError, Client

__all__ = ["ApiError", "Client"]
