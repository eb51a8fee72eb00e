"""The pipeline API: one async function per pipeline, a context to report through.

A pipeline declares its phases and the share of overall progress each covers
(SPEC §2). It reports through its `PipelineContext`; it never touches the store,
the bus or the API, so the same function runs under any worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
from pydantic import BaseModel

from genwire.models import Artifact, JsonObject, StepState
from genwire.providers.base import RemotePhases, RemoteRequest, RemoteResult

DEFAULT_TIME_LIMIT_S = 1800.0


@dataclass(frozen=True)
class Phase:
    name: str
    start: float  #: overall progress (0–100) when the phase begins
    end: float  #: overall progress when it ends

    def overall(self, phase_progress: float) -> float:
        share = min(max(phase_progress, 0.0), 100.0) / 100.0
        return self.start + (self.end - self.start) * share


class PipelineError(Exception):
    """Raised by a pipeline to fail its job with a chosen code and message."""

    def __init__(self, message: str, *, code: str = "pipeline_error", retryable: bool = False):
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


class JobCancelled(Exception):
    """Raised inside a pipeline when its job was asked to stop."""


class JobReporter(Protocol):
    """What a context writes through; the service implements it for one job attempt."""

    async def step_status(self, phase: str, state: StepState, progress: float) -> None: ...

    async def step_progress(
        self,
        phase: str,
        progress: float,
        phase_progress: float,
        message: str | None,
        eta_s: float | None,
    ) -> None: ...

    async def warning(self, message: str, code: str | None) -> None: ...

    async def status(self, message: str, queue_position: int | None) -> None: ...

    async def artifact(self, source: Path, name: str, media_type: str | None) -> Artifact: ...


class RemoteFollower(Protocol):
    """Runs a call to a remote provider for a pipeline (`genwire.providers.follow`)."""

    async def follow(
        self,
        ctx: PipelineContext,
        provider: str,
        request: RemoteRequest,
        *,
        key: str,
        timeout_s: float,
        phases: RemotePhases | None,
        copy_outputs: bool,
    ) -> RemoteResult: ...


class PipelineContext:
    """Handed to a running pipeline: report phases, progress, warnings, artifacts.

    Overall progress never goes down within an attempt (SPEC §2): a report below
    the current value is kept at the current value.
    """

    def __init__(
        self,
        *,
        job_id: str,
        attempt: int,
        phases: tuple[Phase, ...],
        workdir: Path,
        reporter: JobReporter,
        cancel_requested: asyncio.Event,
        remote: RemoteFollower | None = None,
    ) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.workdir = workdir
        self._phases = {phase.name: phase for phase in phases}
        self._order = [phase.name for phase in phases]
        self._reporter = reporter
        self._cancel_requested = cancel_requested
        self._current: Phase | None = None
        self._progress = 0.0
        self._remote = remote

    @property
    def progress(self) -> float:
        return self._progress

    @property
    def current_phase(self) -> str | None:
        return self._current.name if self._current else None

    @property
    def cancelled(self) -> bool:
        return self._cancel_requested.is_set()

    def raise_if_cancelled(self) -> None:
        """For CPU-bound loops: stop at a safe point once cancel was asked."""
        if self.cancelled:
            raise JobCancelled(self.job_id)

    async def phase(self, name: str) -> None:
        """Complete the current phase, mark any phase jumped over as skipped, start `name`."""
        target = self._phases.get(name)
        if target is None:
            raise ValueError(f"unknown phase {name!r}; declared: {', '.join(self._order)}")
        self.raise_if_cancelled()
        await self._finish_current()
        start_index = self._order.index(self._current.name) + 1 if self._current else 0
        for skipped in self._order[start_index : self._order.index(name)]:
            await self._reporter.step_status(skipped, StepState.SKIPPED, self._progress)
        self._current = target
        self._progress = max(self._progress, target.start)
        await self._reporter.step_status(name, StepState.STARTED, self._progress)

    async def report(
        self,
        phase_progress: float,
        message: str | None = None,
        *,
        eta_s: float | None = None,
    ) -> None:
        """Progress inside the current phase, 0–100, with an optional message and ETA."""
        phase = self._require_phase()
        self.raise_if_cancelled()
        self._progress = max(self._progress, phase.overall(phase_progress))
        await self._reporter.step_progress(
            phase.name,
            self._progress,
            min(max(phase_progress, 0.0), 100.0),
            message,
            eta_s,
        )

    async def warn(self, message: str, *, code: str | None = None) -> None:
        await self._reporter.warning(message, code)

    async def status(self, message: str, *, queue_position: int | None = None) -> None:
        """Say what the job is doing (a `job-status` event), e.g. its place in a
        provider's queue; progress is unchanged."""
        await self._reporter.status(message, queue_position)

    async def run_remote(
        self,
        provider: str,
        request: RemoteRequest,
        *,
        key: str = "main",
        timeout_s: float = DEFAULT_TIME_LIMIT_S,
        phases: RemotePhases | None = None,
        copy_outputs: bool = True,
    ) -> RemoteResult:
        """Run `request` at a remote provider; its `output` is `{provider,
        provider_job_id, result}` with the provider's file URLs replaced by genwire's,
        its files copied into storage as artifacts (and kept in `workdir` as `files`).

        `key` names the call within the job: a job run again (a restart, a lost
        worker) follows the provider job its call already made instead of
        submitting another. Give each call of a pipeline its own key.
        `phases`: this pipeline's phases to move through (submit, queue, generate,
        copy); without them, the provider's progress is reported in the current phase.
        """
        if self._remote is None:
            raise PipelineError(
                "remote providers are not available in this process", code="provider_unavailable"
            )
        return await self._remote.follow(
            self,
            provider,
            request,
            key=key,
            timeout_s=timeout_s,
            phases=phases,
            copy_outputs=copy_outputs,
        )

    async def artifact(
        self, source: Path, *, name: str | None = None, media_type: str | None = None
    ) -> Artifact:
        """Move a finished file into storage and announce it; returns the stored artifact."""
        return await self._reporter.artifact(source, name or source.name, media_type)

    async def complete(self) -> None:
        """Close the last phase; the worker calls this when the pipeline returns."""
        await self._finish_current()
        for skipped in self._remaining_after_current():
            await self._reporter.step_status(skipped, StepState.SKIPPED, self._progress)
        self._current = None

    def _remaining_after_current(self) -> list[str]:
        return (
            []
            if self._current is None
            else self._order[self._order.index(self._current.name) + 1 :]
        )

    async def _finish_current(self) -> None:
        if self._current is None:
            return
        self._progress = max(self._progress, self._current.end)
        await self._reporter.step_status(self._current.name, StepState.COMPLETED, self._progress)

    def _require_phase(self) -> Phase:
        if self._current is None:
            raise RuntimeError("call ctx.phase(name) before reporting progress")
        return self._current


PipelineFunction = Callable[[PipelineContext, Any], Coroutine[Any, Any, JsonObject | None]]


@dataclass(frozen=True)
class Pipeline:
    """A named pipeline: its phases, its input model, its function and time limit."""

    name: str
    description: str
    phases: tuple[Phase, ...]
    input_model: type[BaseModel]
    run: PipelineFunction
    time_limit_s: float = DEFAULT_TIME_LIMIT_S
    #: remote providers it calls: a job is refused while one of them is not configured
    providers: tuple[str, ...] = ()

    def validate_input(self, raw: JsonObject) -> BaseModel:
        """`raw`, a job's input as JSON, read into the input model; pydantic's
        `ValidationError` if it does not match. Read strictly, as JSON: a number only
        from a JSON number (not `true`, not `"5"`), as the JSON Schema of `describe`
        says; an integer is still a number where a float is asked for, and a float
        with no fraction (`2.0`) an integer, as JSON Schema counts it."""
        return self.input_model.model_validate_json(
            orjson.dumps(_whole_floats_as_ints(raw)), strict=True
        )

    def describe(self) -> JsonObject:
        return {
            "providers": list(self.providers),
            "name": self.name,
            "description": self.description,
            "phases": [
                {"name": phase.name, "start": phase.start, "end": phase.end}
                for phase in self.phases
            ],
            "input_schema": self.input_model.model_json_schema(),
            "time_limit_s": self.time_limit_s,
        }


def _whole_floats_as_ints(value: Any) -> Any:
    """`value` with every float that has no fraction written as an int: JSON does not
    tell `2.0` from `2`, and strict pydantic would refuse the former for an int. Not
    past 64 bits (`1e300`): orjson cannot write such an int, and no int field wants it."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_floats_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_floats_as_ints(item) for item in value]
    return value


def _phases_from(spec: Mapping[str, tuple[float, float]]) -> tuple[Phase, ...]:
    phases = tuple(Phase(name, float(start), float(end)) for name, (start, end) in spec.items())
    previous_end = 0.0
    for phase in phases:
        if not (previous_end <= phase.start <= phase.end <= 100.0):
            raise ValueError(f"phase {phase.name!r} must follow the previous one within 0–100")
        previous_end = phase.end
    return phases


def pipeline(
    name: str,
    *,
    input: type[BaseModel],
    phases: Mapping[str, tuple[float, float]],
    description: str = "",
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    providers: tuple[str, ...] = (),
) -> Callable[[PipelineFunction], Pipeline]:
    """Declare a pipeline from an async function `fn(ctx, input) -> output`."""

    def declare(fn: PipelineFunction) -> Pipeline:
        return Pipeline(
            name=name,
            description=description or (fn.__doc__ or "").strip().split("\n")[0],
            phases=_phases_from(phases),
            input_model=input,
            run=fn,
            time_limit_s=time_limit_s,
            providers=providers,
        )

    return declare


class PipelineRegistry:
    """The pipelines a server offers, by name."""

    def __init__(self, pipelines: Iterable[Pipeline] = ()) -> None:
        self._pipelines: dict[str, Pipeline] = {}
        for item in pipelines:
            self.register(item)

    def register(self, item: Pipeline) -> Pipeline:
        if item.name in self._pipelines:
            raise ValueError(f"pipeline {item.name!r} is already registered")
        self._pipelines[item.name] = item
        return item

    def get(self, name: str) -> Pipeline | None:
        return self._pipelines.get(name)

    def __iter__(self) -> Any:
        return iter(sorted(self._pipelines.values(), key=lambda item: item.name))
