"""A scaled-out deployment in real processes (SPEC §1, §4.8): two API nodes and two
workers, each with a data dir of its own, sharing only PostgreSQL, Redis and an S3
server. Fifty jobs go in through node A and are streamed through node B; one
worker is SIGKILLed mid-run and node B is restarted mid-stream. Every job must
succeed, every reader must see every event once and in order, and every artifact
must download from either node."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from httpx_sse import aconnect_sse

from tests.conftest import SHARED_WEBHOOK_SECRET, ServerProcess, start_server_process
from tests.redis_servers import free_port
from tests.s3_server import Bucket, S3Server, new_bucket
from tests.waiting import eventually, wait_until

JOBS = 50
LEASE_TTL_S = "3"  #: a SIGKILLed worker's job is back in the queue within seconds
TERMINAL = frozenset({"job-completed", "job-failed", "job-cancelled"})


@dataclass
class Deployment:
    folder: Path
    shared: list[str]  #: --database, --bus, --storage and the lease
    node_b_port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    def node(self, name: str, port: int = 0) -> ServerProcess:
        server = start_server_process(
            self.folder / name, *self.shared, "--workers", "0", "--port", str(port)
        )
        self.processes.append(server.process)
        return server

    def worker(self, name: str, *extra: str) -> subprocess.Popen[str]:
        log_path = self.folder / f"{name}.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "genwire",
                    "worker",
                    "--data-dir",
                    str(self.folder / name),
                    *self.shared,
                    *extra,
                    "--concurrency",
                    "4",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                env={**os.environ, "NO_COLOR": "1"},
            )
        self.processes.append(process)
        wait_until(lambda: "running 4 slot" in log_path.read_text(), f"{name} to start")
        return process


@pytest.fixture
def deployment(
    tmp_path: Path, postgres_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Deployment, Bucket]]:
    s3 = S3Server()
    bucket = new_bucket(s3, monkeypatch)  # the AWS_* variables every child inherits
    monkeypatch.setenv("GENWIRE_WEBHOOK_SECRET", SHARED_WEBHOOK_SECRET)  # one for all nodes
    shared = ["--database", postgres_url, "--bus", redis_url, "--storage", bucket.url()]
    setup = Deployment(tmp_path, [*shared, "--lease-ttl", LEASE_TTL_S])
    try:
        yield setup, bucket
    finally:
        for process in setup.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        s3.stop()


class Reader:
    """One job's stream through node B, resuming from its cursor whenever the
    connection drops (as every client does)."""

    def __init__(self, url: str, job_id: str) -> None:
        self.url = url
        self.job_id = job_id
        self.ids: list[str] = []
        self.types: list[str] = []

    async def read_to_the_end(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            while not self.types or self.types[-1] not in TERMINAL:
                headers = {"Last-Event-ID": self.ids[-1]} if self.ids else {}
                try:
                    async with aconnect_sse(
                        client, "GET", f"/api/jobs/{self.job_id}/events", headers=headers
                    ) as source:
                        async for sse in source.aiter_sse():
                            if sse.data:
                                self.ids.append(sse.id)
                                self.types.append(sse.event)
                except httpx.TransportError:
                    await asyncio.sleep(0.2)  # node B is restarting


async def test_two_nodes_and_two_workers_lose_nothing_through_a_kill_and_a_restart(
    deployment: tuple[Deployment, Bucket],
) -> None:
    setup, bucket = deployment
    node_a = setup.node("node-a")
    node_b = setup.node("node-b", setup.node_b_port)
    killed = setup.worker("worker-1")
    setup.worker("worker-2")

    async with httpx.AsyncClient(base_url=node_a.url, timeout=30) as on_a:
        job_ids = []
        for n in range(JOBS):
            response = await on_a.post(
                "/api/jobs",
                json={
                    "pipeline": "demo.synthetic",
                    "input": {"steps": 20, "step_ms": 40, "output_bytes": 4096 + n},
                },
            )
            assert response.status_code == 201, response.text
            job_ids.append(response.json()["id"])
        readers = [Reader(node_b.url, job_id) for job_id in job_ids]
        reading = asyncio.gather(*(reader.read_to_the_end() for reader in readers))

        await eventually(lambda: _running(on_a, job_ids, at_least=4), "jobs running")
        killed.send_signal(signal.SIGKILL)
        await eventually(lambda: _ended(on_a, job_ids, at_least=JOBS // 3), "a third ended")
        node_b.process.terminate()
        node_b.process.wait(timeout=30)
        node_b = setup.node("node-b", setup.node_b_port)
        await asyncio.wait_for(reading, timeout=240)

        references = [
            (await on_a.get(f"/api/jobs/{job_id}/poll", params={"wait": "0"})).json()
            for job_id in job_ids
        ]
        snapshots = [(await on_a.get(f"/api/jobs/{job_id}")).json() for job_id in job_ids]

    assert [job["status"] for job in snapshots] == ["succeeded"] * JOBS
    assert any(job["attempt"] > 1 for job in snapshots), "the kill left every job alone"
    for reader, reference in zip(readers, references, strict=True):
        assert reader.ids == [event["id"] for event in reference["events"]], reader.job_id
    await _artifacts_download_alike(snapshots, [node_a.url, node_b.url])
    assert len(bucket.keys()) >= JOBS


async def _running(client: httpx.AsyncClient, job_ids: list[str], at_least: int) -> bool:
    statuses = [(await client.get(f"/api/jobs/{job_id}")).json()["status"] for job_id in job_ids]
    return statuses.count("running") >= at_least


async def _ended(client: httpx.AsyncClient, job_ids: list[str], at_least: int) -> bool:
    statuses = [(await client.get(f"/api/jobs/{job_id}")).json()["status"] for job_id in job_ids]
    return sum(status == "succeeded" for status in statuses) >= at_least


async def _artifacts_download_alike(snapshots: list[dict[str, object]], urls: list[str]) -> None:
    for snapshot in snapshots:
        artifacts = snapshot["artifacts"]
        assert isinstance(artifacts, list)
        assert artifacts, snapshot["id"]
        for artifact in artifacts:
            for url in urls:
                async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                    body = (await client.get(artifact["url"])).content
                assert hashlib.sha256(body).hexdigest() == artifact["sha256"], (url, artifact)


async def test_two_worker_processes_never_run_a_job_twice_and_sigterm_hands_jobs_back(
    deployment: tuple[Deployment, Bucket],
) -> None:
    setup, _ = deployment
    node = setup.node("node")
    stopped = setup.worker("worker-1", "--shutdown-grace", "1")
    setup.worker("worker-2")
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as client:
        quick = [await _submit(client, {"steps": 2, "step_ms": 5}) for _ in range(40)]
        await eventually(lambda: _ended(client, quick, at_least=len(quick)), "the quick jobs")
        # A job too long for the grace: SIGTERM must give it back, not lose it.
        long_ones = [await _submit(client, {"steps": 40, "step_ms": 300}) for _ in range(8)]
        await eventually(lambda: _running(client, long_ones, at_least=8), "both workers busy")
        stopped.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(stopped.wait, 60) == 0
        await eventually(
            lambda: _ended(client, long_ones, at_least=len(long_ones)), "the long jobs", timeout=120
        )
        histories = [
            (await client.get(f"/api/jobs/{job_id}/poll", params={"wait": "0"})).json()["events"]
            for job_id in quick + long_ones
        ]
        snapshots = [(await client.get(f"/api/jobs/{job_id}")).json() for job_id in long_ones]

    for events in histories[: len(quick)]:
        starts = [e for e in events if e["type"] == "job-status" and e["status"] == "running"]
        assert len(starts) == 1, events  # claimed once: no job ran on both workers
    assert all(job["status"] == "succeeded" for job in snapshots)
    assert any(job["attempt"] == 2 for job in snapshots), "SIGTERM gave nothing back"


async def _submit(client: httpx.AsyncClient, synthetic: dict[str, int]) -> str:
    response = await client.post(
        "/api/jobs", json={"pipeline": "demo.synthetic", "input": synthetic}
    )
    assert response.status_code == 201, response.text
    job_id: str = response.json()["id"]
    return job_id
