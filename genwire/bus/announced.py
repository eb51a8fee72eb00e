"""What a cross-process bus told this process: which event ids were announced, and
whether it is hearing at all. The feeds' backstop checks the log against it
(`genwire.delivery.backstop`)."""

from __future__ import annotations

from collections.abc import Iterable


class AnnouncedEvents:
    """Event ids heard on the bus, kept only while a backstop watches (`tracking`),
    and the state of the bus's subscription."""

    def __init__(self) -> None:
        self._ids: set[int] = set()
        #: set by the backstop while it runs: with nobody checking, ids are not kept
        self.tracking = False
        #: the subscription is up: another process's announcement reaches this one
        self.connected = False
        #: times the subscription came back after being lost (events may have been
        #: announced meanwhile, unheard)
        self.outages = 0
        #: whole announcements received from other processes
        self.received = 0
        #: announcements this process sent, and those it could not send
        self.published = 0
        self.publish_failures = 0

    def note(self, event_ids: Iterable[int]) -> None:
        if self.tracking:
            self._ids.update(event_ids)

    def count_between(self, after: int, through: int) -> int:
        """How many ids in (after, through] were heard."""
        return sum(1 for seq in self._ids if after < seq <= through)

    def forget_through(self, seq: int) -> None:
        self._ids = {kept for kept in self._ids if kept > seq}

    def stop_tracking(self) -> None:
        self.tracking = False
        self._ids.clear()
