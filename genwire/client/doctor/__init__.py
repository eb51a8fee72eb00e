"""`genwire doctor`: checks that results reach clients live through whatever sits
between them and the server (SPEC §3, §4, §6).

Each check is a small function answering a `Check` with a verdict (`ok`, `warn`,
`fail`), what was seen, and, when not ok, what to fix. `run_checks` runs them in
order against one server: health; a `demo.synthetic` job end to end over SSE (and
the time to its first event); whether a proxy buffers the stream; long-poll; the
artifact's download; the keepalive spacing on an idle stream; the providers' keys.
Every wait is bounded.

It drives the server as a user's code would, through `genwire.client`'s public names
alone, with raw `httpx` requests where it watches the wire itself:

- `session`: the `Check` a check answers and the `Doctor` the checks share
- `sse`: an SSE stream read frame by frame, with when each frame arrived
- `events`: how a job's events reach the client (SSE, buffering, long-poll, keepalive)
- `endpoints`: the plain answers (health, a file and its Range, the providers' keys)
- `runner`: the checks in order, and `run_checks`
"""

from genwire.client.doctor.runner import run_checks
from genwire.client.doctor.session import Check, Doctor

__all__ = ["Check", "Doctor", "run_checks"]
