"""The connection guard: what a client may hold before it has said what it wants.

uvicorn reads a request's head and body without a deadline (its keep-alive time-out
starts only after a first answer), accepts a head of any size with httptools, and
accepts connections until the process runs out of descriptors, at which point
nothing, `/healthz` included, is served. The guard is uvicorn's own httptools
protocol with these limits added (`guarded_http`):

- a request's head must arrive whole within `head_timeout_s` (408, or a silent
  close for a connection that sent nothing), its body within `body_timeout_s` (408);
- a head over `max_head_bytes` is answered 431 and the connection closed;
- past `max_connections` in the process, or `max_connections_per_address` from one
  client address, a new connection is answered 503 `too-many-connections`.

It lives in the server itself so that the embedded default is safe with nothing in
front; behind a proxy (docs/DEPLOY.md), the proxy's own limits come first and the
per-address cap is turned off, since every connection comes from the proxy.
Streams and long-polls are not touched: once a head has arrived, nothing here
limits how long its answer lasts.
"""

from genwire.api.guard.census import ConnectionCensus
from genwire.api.guard.limits import ConnectionLimits, connection_limits, raise_open_files_limit
from genwire.api.guard.protocol import guarded_http

__all__ = [
    "ConnectionCensus",
    "ConnectionLimits",
    "connection_limits",
    "guarded_http",
    "raise_open_files_limit",
]
