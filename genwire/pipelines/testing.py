"""A test double for pipeline authors: run a pipeline with no server, store or worker.

    from genwire.pipelines.testing import run_pipeline

    async def test_upscale_doubles_the_size(tmp_path):
        run = await run_pipeline(upscale, {"image_url": url}, tmp_path)
        assert run.reporter.started_phases() == ["fetch", "upscale"]

`run_pipeline` validates the input as the server does, runs the function on a real
`PipelineContext` and completes it as a worker does; the `RecordingReporter` keeps
every report, warning, status and artifact (copied into a folder, with its sha256).
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genwire.models import Artifact, JsonObject, StepState
from genwire.pipelines.base import Pipeline, PipelineContext, RemoteFollower

JOB_ID = "job-under-test"


@dataclass(frozen=True)
class Report:
    """One step-status (with `state`) or step-progress (without) report."""

    phase: str
    progress: float  #: overall, 0–100
    state: StepState | None = None
    eta_s: float | None = None
    message: str | None = None


@dataclass
class RecordingReporter:
    """A `JobReporter` that records every call and keeps artifacts in `storage`."""

    storage: Path
    reports: list[Report] = field(default_factory=list)
    warnings: list[tuple[str, str | None]] = field(default_factory=list)
    statuses: list[tuple[str, int | None]] = field(default_factory=list)
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    #: called with the phase at each progress report (to cancel at a chosen point)
    on_progress: Callable[[str], None] | None = None

    async def step_status(self, phase: str, state: StepState, progress: float) -> None:
        self.reports.append(Report(phase, progress, state))

    async def step_progress(
        self,
        phase: str,
        progress: float,
        phase_progress: float,
        message: str | None,
        eta_s: float | None,
    ) -> None:
        self.reports.append(Report(phase, progress, eta_s=eta_s, message=message))
        if self.on_progress is not None:
            self.on_progress(phase)

    async def warning(self, message: str, code: str | None) -> None:
        self.warnings.append((message, code))

    async def status(self, message: str, queue_position: int | None) -> None:
        self.statuses.append((message, queue_position))

    async def artifact(self, source: Path, name: str, media_type: str | None) -> Artifact:
        target = self.storage / f"{len(self.artifacts) + 1}-{Path(name).name}"
        await asyncio.to_thread(shutil.copyfile, source, target)
        stored = Artifact(
            id=f"art-{len(self.artifacts) + 1}",
            job_id=JOB_ID,
            name=name,
            type=media_type or "application/octet-stream",
            size_bytes=target.stat().st_size,
            sha256=hashlib.sha256(target.read_bytes()).hexdigest(),
            path=target.name,
        )
        self.artifacts[name] = stored
        return stored

    def file(self, name: str) -> Path:
        """Where the artifact called `name` was kept."""
        return self.storage / self.artifacts[name].path

    def started_phases(self) -> list[str]:
        return [report.phase for report in self.reports if report.state is StepState.STARTED]


@dataclass(frozen=True)
class PipelineRun:
    output: JsonObject | None
    reporter: RecordingReporter


async def run_pipeline(
    item: Pipeline,
    raw_input: dict[str, Any],
    folder: Path,
    *,
    cancel: asyncio.Event | None = None,
    on_progress: Callable[[str], None] | None = None,
    remote: RemoteFollower | None = None,
) -> PipelineRun:
    """Run `item` as a worker would: validate the input, run, complete the context.

    `folder` gets `work/` (the context's workdir) and `storage/` (the artifacts).
    Whatever the pipeline raises (`PipelineError`, `JobCancelled`, a pydantic
    `ValidationError` for bad input) is raised here."""
    (folder / "work").mkdir(parents=True, exist_ok=True)
    (folder / "storage").mkdir(exist_ok=True)
    reporter = RecordingReporter(folder / "storage", on_progress=on_progress)
    ctx = PipelineContext(
        job_id=JOB_ID,
        attempt=1,
        phases=item.phases,
        workdir=folder / "work",
        reporter=reporter,
        cancel_requested=cancel or asyncio.Event(),
        remote=remote,
    )
    output = await item.run(ctx, item.input_model.model_validate(raw_input))
    await ctx.complete()
    return PipelineRun(output, reporter)
