"""Row 7: what `?token=` tells a client without a key about which ids exist, and
how many of another tenant's ids probing an own id's neighbours finds."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import httpx

from bench.hostile.report import Row, progress
from bench.hostile.server import new_key, serving
from genwire.ids import new_id

NAME = "token-oracle"
ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  #: the ids' Crockford base32
ROUND = 10  #: pairs of creates in flight at once: ids made in the same millisecond
PROBES_AT_ONCE = 20
JOB: dict[str, Any] = {"pipeline": "demo.synthetic", "input": {"steps": 1, "step_ms": 0}}
FILE_JOB: dict[str, Any] = {
    "pipeline": "demo.synthetic",
    "input": {"steps": 1, "step_ms": 0, "output_bytes": 16},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(NAME)
    group.add_argument("--oracle-jobs", type=int, default=100, help="jobs of each tenant")
    group.add_argument("--neighbours", type=int, default=3, help="ids probed each side of one")


async def run(options: argparse.Namespace) -> list[Row]:
    keys = {new_key("ka"): "alice", new_key("kb"): "bob"}
    key_a, key_b = keys
    async with (
        serving(keys=keys) as server,
        _client(server.url, key_a) as a,
        _client(server.url, key_b) as b,
        _client(server.url, None) as outsider,
    ):
        statuses = await _token_routes(b, outsider)
        progress(NAME, statuses)
        ids_a, ids_b = await _interleaved(a, b, options.oracle_jobs)
        unknown = await _probe(outsider, new_id("job"))
        found, neighbours, differing, probed = await _guess(
            outsider, ids_a, set(ids_b), options.neighbours, unknown
        )
    guessing = (
        f"{found} of B's {len(ids_b)} ids found ({neighbours} of them among the {probed} "
        f"neighbours probed; {differing} probes answered otherwise than an unknown id's {unknown})"
    )
    progress(NAME, guessing)
    return [
        Row(
            NAME,
            "no key, `?token=garbage` on tenant B's job (and its file) vs an unknown id, on "
            "every token route",
            statuses,
        ),
        Row(
            NAME,
            f"A and B create {options.oracle_jobs} jobs each, interleaved ({ROUND} pairs at "
            f"once); ±1..±{options.neighbours} of each of A's ids probed on the poll route "
            "with `?token=garbage`",
            guessing,
        ),
    ]


def _client(url: str, key: str | None) -> httpx.AsyncClient:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(base_url=url, headers=headers, timeout=30.0)


async def _token_routes(b: httpx.AsyncClient, outsider: httpx.AsyncClient) -> str:
    job = (await b.post("/api/jobs", json=FILE_JOB)).raise_for_status().json()
    deadline = time.monotonic() + 30.0
    while job["status"] != "succeeded" and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        job = (await b.get(f"/api/jobs/{job['id']}")).json()
    if not job["artifacts"]:
        raise RuntimeError(f"B's job {job['id']} has no file: {job['status']}")
    pairs = [
        ("events", f"/api/jobs/{job['id']}/events", f"/api/jobs/{new_id('job')}/events"),
        ("poll", f"/api/jobs/{job['id']}/poll", f"/api/jobs/{new_id('job')}/poll"),
        ("files", f"/api/files/{job['artifacts'][0]['id']}", f"/api/files/{new_id('art')}"),
    ]
    answers = []
    for route, existing, unknown in pairs:
        ours = await _status(outsider, f"{existing}?token=garbage&wait=0")
        theirs = await _status(outsider, f"{unknown}?token=garbage&wait=0")
        answers.append(f"{route}: B's {ours}, unknown {theirs}")
    return "; ".join(answers)


async def _status(http: httpx.AsyncClient, path: str) -> int:
    async with http.stream("GET", path) as response:
        return response.status_code


async def _interleaved(
    a: httpx.AsyncClient, b: httpx.AsyncClient, count: int
) -> tuple[list[str], list[str]]:
    ids_a: list[str] = []
    ids_b: list[str] = []
    for start in range(0, count, ROUND):
        size = min(ROUND, count - start)
        made = await asyncio.gather(*(_create(http) for _ in range(size) for http in (a, b)))
        ids_a += made[0::2]
        ids_b += made[1::2]
    return ids_a, ids_b


async def _create(http: httpx.AsyncClient) -> str:
    job_id: str = (await http.post("/api/jobs", json=JOB)).raise_for_status().json()["id"]
    return job_id


async def _probe(outsider: httpx.AsyncClient, job_id: str) -> int:
    return await _status(outsider, f"/api/jobs/{job_id}/poll?token=garbage&wait=0")


async def _guess(
    outsider: httpx.AsyncClient, ids_a: list[str], ids_b: set[str], span: int, unknown: int
) -> tuple[int, int, int, int]:
    """Probes ±1..±`span` of each of A's ids: B's ids found (answered otherwise than an
    unknown id), B's ids among the probed, probes answered otherwise, probes."""
    own = set(ids_a)
    candidates = sorted(
        {
            _shifted(job_id, step)
            for job_id in ids_a
            for step in (*range(-span, 0), *range(1, span + 1))
        }
        - own
    )
    gate = asyncio.Semaphore(PROBES_AT_ONCE)

    async def probe(job_id: str) -> int:
        async with gate:
            return await _probe(outsider, job_id)

    answers = await asyncio.gather(*(probe(job_id) for job_id in candidates))
    differing = {
        job_id for job_id, status in zip(candidates, answers, strict=True) if status != unknown
    }
    among = ids_b.intersection(candidates)
    return len(among & differing), len(among), len(differing), len(candidates)


def _shifted(job_id: str, step: int) -> str:
    """The id `step` above (or below) `job_id`, as a number in base 32."""
    prefix, _, body = job_id.partition("_")
    value = 0
    for char in body:
        value = value * 32 + ALPHABET.index(char)
    value += step
    chars = []
    for _ in body:
        value, digit = divmod(value, 32)
        chars.append(ALPHABET[digit])
    return f"{prefix}_{''.join(reversed(chars))}"
