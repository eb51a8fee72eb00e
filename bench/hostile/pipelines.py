"""The bench's own pipeline, loaded by its servers with `--pipelines
bench.hostile.pipelines`: `bench.endless`, a job that holds its worker slot until it
is cancelled (row 4: two of them take every slot of the default server)."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ConfigDict

from genwire.models import JsonObject
from genwire.pipelines import PipelineContext, pipeline


class NoInput(BaseModel):
    model_config = ConfigDict(extra="forbid")


@pipeline(
    "bench.endless",
    input=NoInput,
    phases={"wait": (0, 100)},
    description="Runs until cancelled (or its time limit).",
)
async def endless(ctx: PipelineContext, params: NoInput) -> JsonObject:
    """Runs until cancelled (or its time limit)."""
    await ctx.phase("wait")
    await asyncio.Event().wait()
    return {}
