"""Nchan as a target: events POSTed to /pub, subscribers on /sub."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from bench.nchan.nginx import nchan_server
from bench.nchan.servers import STEPS, Running, Source, Target

SATURATION_PUBLISHERS = 2  #: POST connections to Nchan at saturation


def step_progress(seq: int) -> bytes:
    """An event shaped like genwire's `step-progress` (SPEC §4), stamped now."""
    progress = round(100.0 * seq / STEPS, 2)
    event = {
        "id": f"{seq:016d}",
        "type": "step-progress",
        "job_id": "job_01m7ynh26me831v91emv0nhw69",
        "ts": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "phase": "work",
        "phase_progress": progress,
        "message": f"step {seq}/{STEPS}",
        "eta_s": 0.0,
        "progress": round(progress * 0.9, 2),
    }
    return json.dumps(event, separators=(",", ":")).encode()


class NchanPublisher:
    """POSTs events to /pub from threads, each on its own keep-alive connection:
    `rate` a second on a steady clock, or with rate 0 each thread its next as soon
    as nginx answered its last."""

    def __init__(self, port: int, rate: float, connections: int = 1) -> None:
        self._port = port
        self._rate = rate / connections
        self._stopping = threading.Event()
        self._failures: list[BaseException] = []
        self._threads = [
            threading.Thread(target=self._run, daemon=True) for _ in range(connections)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=30)
        if self._failures:
            raise RuntimeError("the Nchan publisher failed") from self._failures[0]

    def _run(self) -> None:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self._port, timeout=30)
            started = time.monotonic()
            seq = 0
            while not self._stopping.is_set():
                seq += 1
                if self._rate and (delay := started + seq / self._rate - time.monotonic()) > 0:
                    self._stopping.wait(delay)
                connection.request("POST", "/pub", body=step_progress(seq))
                response = connection.getresponse()
                response.read()
                if response.status not in (201, 202):
                    raise RuntimeError(f"POST /pub answered {response.status}")
            connection.close()
        except BaseException as error:  # reported by stop(), in the main thread
            self._failures.append(error)


@contextlib.contextmanager
def nchan_flow(server: Running, rate: float, transport: str) -> Iterator[Source]:
    if transport != "job":
        raise ValueError(f"Nchan has no {transport!r} transport here")
    # Nchan answers a POST once it has handed the message to its subscribers: at
    # saturation a second connection keeps the next message waiting meanwhile.
    publisher = NchanPublisher(server.port, rate, connections=1 if rate else SATURATION_PUBLISHERS)
    try:
        yield Source("/sub", publisher.start)
    finally:
        publisher.stop()


@contextlib.contextmanager
def nchan_idle(server: Running) -> Iterator[Source]:
    yield Source("/sub", lambda: None)


NCHAN = Target("nchan", nchan_server, nchan_flow, nchan_idle)
