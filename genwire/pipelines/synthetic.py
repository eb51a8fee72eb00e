"""`demo.synthetic`: a pipeline with knobs, for tests and benchmarks (SPEC §7)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from genwire.models import JsonObject
from genwire.pipelines.base import PipelineContext, PipelineError, pipeline

MAX_OUTPUT_BYTES = 256 * 1024 * 1024


class SyntheticInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: int = Field(
        10, ge=0, le=1_000_000, title="Steps", description="Steps to run, one event each."
    )
    step_ms: float = Field(
        10.0,
        ge=0,
        le=600_000,
        title="Step time (ms)",
        description="Time per step, milliseconds.",
    )
    output_bytes: int = Field(
        0,
        ge=0,
        le=MAX_OUTPUT_BYTES,
        title="Output size (bytes)",
        description="Size of the output file; 0 for none.",
    )
    warn_at: int | None = Field(
        None, ge=0, title="Warn at step", description="Emit a warning at this step."
    )
    fail_at: int | None = Field(
        None, ge=0, title="Fail at step", description="Fail the job at this step."
    )
    fail_retryable: bool = Field(
        False, title="Failure is retryable", description="Whether the failure is marked retryable."
    )


@pipeline(
    "demo.synthetic",
    input=SyntheticInput,
    phases={"work": (0, 90), "output": (90, 100)},
    description="Configurable steps, step time, output size, warning and failure.",
)
async def run_synthetic(ctx: PipelineContext, params: SyntheticInput) -> JsonObject:
    """Configurable steps, step time, output size, warning and failure."""
    await ctx.phase("work")
    loop = asyncio.get_running_loop()
    step_s = params.step_ms / 1000.0
    started = loop.time()
    for step in range(1, params.steps + 1):
        # A steady clock: each step is due at started + step * step_s, so time spent
        # reporting does not drift the schedule.
        delay = started + step * step_s - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if params.fail_at is not None and step == params.fail_at:
            raise PipelineError(
                f"synthetic failure at step {step}",
                code="synthetic_failure",
                retryable=params.fail_retryable,
            )
        if params.warn_at is not None and step == params.warn_at:
            await ctx.warn(f"synthetic warning at step {step}", code="synthetic_warning")
        remaining = (params.steps - step) * step_s
        await ctx.report(
            100.0 * step / params.steps, f"step {step}/{params.steps}", eta_s=round(remaining, 3)
        )
    await ctx.phase("output")
    artifacts = []
    if params.output_bytes:
        path = ctx.workdir / "output.bin"
        await asyncio.to_thread(_write_pattern, path, params.output_bytes)
        artifacts.append((await ctx.artifact(path, media_type="application/octet-stream")).id)
    return {"steps": params.steps, "artifact_ids": artifacts}


def _write_pattern(path: Path, size: int) -> None:
    chunk = bytes(range(256)) * 4096
    with path.open("wb") as handle:
        remaining = size
        while remaining:
            piece = chunk[: min(remaining, len(chunk))]
            handle.write(piece)
            remaining -= len(piece)
