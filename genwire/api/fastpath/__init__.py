"""The fast path: delivery that leaves ASGI once a reader has caught up.

A reader that keeps up with its job costs, through ASGI, a task, its timers and a
trip through the HTTP framing at every event; a poller, a whole routed request at
every answer. Behind this door those costs go, measured in docs/ARCHITECTURE.md
("The fast path"):

- `hand_off_stream`: a caught-up SSE stream gives its connection to its feed,
  which writes each new batch to it, encoded once for every stream.
- `park_poll`: a caught-up long-poll gives its connection to its feed, which
  answers it whole in one write; its route returns `PARKED`.
- `HotPaths`: the delivery routes that every poller asks for, found from the path
  alone instead of through Starlette's routing.
- `listening_socket`: a socket whose dead peers the kernel gives up on.

Each entry point says whether it took the request; where it did not (another
server than uvicorn's httptools protocol, a request body still to come, a reader
not caught up), the request goes on through plain ASGI, with the same guarantees.
The app does not park polls or use `HotPaths` when CORS origins are set: those
answers need the middleware's headers. Only `fastpath.connection` reaches into
uvicorn's and Starlette's private parts (`genwire.api.guard` subclasses uvicorn's
protocol through its public hooks).
"""

from genwire.api.fastpath.connection import HeldConnection, held_connection, note_cycle
from genwire.api.fastpath.hot_paths import HotPaths
from genwire.api.fastpath.polls import PARKED, AnswerBody, ParkedPoll, park_poll, poll_body
from genwire.api.fastpath.sockets import listening_socket
from genwire.api.fastpath.streams import StreamSink, hand_off_stream, keepalive_frame

__all__ = [
    "PARKED",
    "AnswerBody",
    "HeldConnection",
    "HotPaths",
    "ParkedPoll",
    "StreamSink",
    "hand_off_stream",
    "held_connection",
    "keepalive_frame",
    "listening_socket",
    "note_cycle",
    "park_poll",
    "poll_body",
]
