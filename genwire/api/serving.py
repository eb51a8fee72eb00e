"""uvicorn's configuration for genwire's app, the same for `genwire serve` and for
the tests' servers: its HTTP protocol is the connection guard's."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from uvicorn import Config

from genwire.api.guard import ConnectionCensus, guarded_http


def server_config(app: Starlette, **options: Any) -> Config:
    """A Config serving `app` (made by `create_app`) through the connection guard,
    counting in the app's census; `options` are uvicorn's own."""
    census: ConnectionCensus = app.state.census
    # No WebSocket: genwire has none, and an upgraded connection leaves the guard.
    return Config(app, http=guarded_http(census), ws="none", lifespan="on", **options)
