"""Row 10: a boolean and a string where a pipeline wants an integer."""

from __future__ import annotations

import argparse
import json

import httpx

from bench.hostile.report import Row, progress
from bench.hostile.server import serving

NAME = "coerced-input"


async def run(options: argparse.Namespace) -> list[Row]:
    answers = []
    async with serving() as server, httpx.AsyncClient(base_url=server.url, timeout=15.0) as http:
        for steps in (True, "5"):
            body = {"pipeline": "demo.synthetic", "input": {"steps": steps}}
            response = await http.post("/api/jobs", json=body)
            if response.status_code < 400:
                taken = response.json()["input"]["steps"]
                answers.append(
                    f'`"steps": {json.dumps(steps)}` → {response.status_code}, taken as {taken!r}'
                )
            else:
                code = response.json().get("code", "")
                answers.append(f'`"steps": {json.dumps(steps)}` → {response.status_code} {code}')
    progress(NAME, "; ".join(answers))
    return [
        Row(
            NAME,
            '`{"pipeline": "demo.synthetic", "input": {"steps": true}}`, and `"steps": "5"`',
            "; ".join(answers),
        )
    ]
