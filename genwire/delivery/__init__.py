"""Delivery of the event log to its readers: one feed per scope per process, read
once and shared by every stream and long-poll of the scope.

    hub.FeedHub ── follow(scope) ──► followers.Follower ── next(cursor) ──► events
        │                                   │
        ├─ feeds.Feed (one per scope) ◄─────┘   memory, or reads.read_after (store)
        └─ ticks the feeds' sinks.Sink: caught-up readers the feed writes to itself
"""

from genwire.delivery.feeds import WINDOW, Feed, StatusAt
from genwire.delivery.followers import Follower
from genwire.delivery.hub import FeedHub, OthersWriting
from genwire.delivery.reads import READ_LIMIT
from genwire.delivery.sinks import SINK_TICK_S, LiveBatch, Sink

__all__ = [
    "READ_LIMIT",
    "SINK_TICK_S",
    "WINDOW",
    "Feed",
    "FeedHub",
    "Follower",
    "LiveBatch",
    "OthersWriting",
    "Sink",
    "StatusAt",
]
