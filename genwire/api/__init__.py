"""The HTTP API of SPEC §3."""

from genwire.api.app import create_app

__all__ = ["create_app"]
