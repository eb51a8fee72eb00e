"""Pipelines that misbehave on purpose, registered beside the built-ins in tests."""

from __future__ import annotations

import asyncio
import time

from pydantic import BaseModel, ConfigDict

from genwire.models import JsonObject
from genwire.pipelines import PipelineContext, PipelineRegistry, default_registry, pipeline


class NoInput(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GateInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = 30.0


@pipeline("test.raises", input=NoInput, phases={"work": (0, 100)})
async def raises(ctx: PipelineContext, params: NoInput) -> JsonObject:
    """Raises an unexpected exception halfway."""
    await ctx.phase("work")
    await ctx.report(50, "about to break")
    raise ZeroDivisionError("the pipeline divided by zero")


@pipeline("test.hangs", input=NoInput, phases={"work": (0, 100)}, time_limit_s=1.0)
async def hangs(ctx: PipelineContext, params: NoInput) -> JsonObject:
    """Never returns; its one-second time limit must end it."""
    await ctx.phase("work")
    await asyncio.Event().wait()
    return {}


@pipeline("test.sleeps", input=GateInput, phases={"work": (0, 100)})
async def sleeps(ctx: PipelineContext, params: GateInput) -> JsonObject:
    """Sleeps without reporting, so only cancellation or a time limit ends it early."""
    await ctx.phase("work")
    await asyncio.sleep(params.seconds)
    return {"slept": params.seconds}


@pipeline("test.blocks", input=GateInput, phases={"work": (0, 100)})
async def blocks(ctx: PipelineContext, params: GateInput) -> JsonObject:
    """CPU-style work in a thread that checks for cancellation between chunks."""
    await ctx.phase("work")

    def busy() -> None:
        deadline = time.monotonic() + params.seconds
        while time.monotonic() < deadline:
            ctx.raise_if_cancelled()
            time.sleep(0.01)

    await asyncio.to_thread(busy)
    return {}


@pipeline("test.bad_output", input=NoInput, phases={"work": (0, 100)})
async def bad_output(ctx: PipelineContext, params: NoInput) -> JsonObject:
    """Returns a list where an object is due."""
    return [1, 2, 3]  # type: ignore[return-value]


@pipeline("test.not_json", input=NoInput, phases={"work": (0, 100)})
async def not_json(ctx: PipelineContext, params: NoInput) -> JsonObject:
    """Returns an object that JSON cannot encode (a set inside)."""
    return {"tags": {"a", "b"}}


def test_registry() -> PipelineRegistry:
    registry = default_registry()
    for item in (raises, hangs, sleeps, blocks, bad_output, not_json):
        registry.register(item)
    return registry
