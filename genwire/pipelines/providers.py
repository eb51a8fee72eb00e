"""`replicate`, `fal` and `runware`: one job at a remote provider, followed to its end
and its outputs copied into genwire's storage (SPEC §7.1)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from genwire.models import JsonObject
from genwire.pipelines.base import PipelineContext, pipeline
from genwire.providers.base import RemotePhases, RemoteRequest

DEFAULT_TIMEOUT_S = 1800.0
MAX_TIMEOUT_S = 24 * 3600.0
PHASES = {"submit": (0, 2), "queue": (2, 5), "generate": (5, 90), "copy": (90, 100)}
#: the worker's own limit, past every call's deadline: the deadline cancels at the
#: provider first, and copying the outputs still has time
TIME_LIMIT_S = MAX_TIMEOUT_S + 3600.0

_MODEL = r"^[A-Za-z0-9][A-Za-z0-9._\-/:@]*$"


def _no_parent_steps(model: str) -> str:
    """A model reference never holds `..`, which would walk out of the provider's API path."""
    if ".." in model:
        raise ValueError("must not contain '..'")
    return model


ModelRef = Annotated[str, Field(max_length=200, pattern=_MODEL), AfterValidator(_no_parent_steps)]
Timeout = Field(
    DEFAULT_TIMEOUT_S,
    gt=0,
    le=MAX_TIMEOUT_S,
    title="Timeout (seconds)",
    description="Seconds the provider may take; past them the job is cancelled there "
    "and fails with provider_timeout.",
)


class ReplicateInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: ModelRef = Field(
        title="Model",
        description="owner/name (its latest version), owner/name:VERSION or a version id.",
    )
    input: JsonObject = Field(
        default_factory=dict, title="Input (JSON)", description="The prediction's input, as is."
    )
    timeout_s: float = Timeout


class FalInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: ModelRef = Field(title="Model", description="The endpoint id, path included (fal-ai/…).")
    input: JsonObject = Field(
        default_factory=dict, title="Input (JSON)", description="The request's arguments."
    )
    timeout_s: float = Timeout


class RunwareInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_type: Literal["imageInference", "videoInference", "audioInference"] = Field(
        title="Task type", description="What Runware makes: an image, a video or audio."
    )
    model: ModelRef = Field(title="Model", description="The model's AIR id.")
    input: JsonObject = Field(
        default_factory=dict,
        title="Input (JSON)",
        description="The task's other fields (positivePrompt, duration, …); genwire sets "
        "taskUUID, deliveryMethod and webhookURL.",
    )
    timeout_s: float = Timeout


@pipeline(
    "replicate",
    input=ReplicateInput,
    phases=PHASES,
    description="A Replicate prediction, its files copied into genwire.",
    time_limit_s=TIME_LIMIT_S,
    providers=("replicate",),
)
async def run_replicate(ctx: PipelineContext, params: ReplicateInput) -> JsonObject:
    request = RemoteRequest(params.model, params.input)
    return await _output(ctx, "replicate", request, params.timeout_s)


@pipeline(
    "fal",
    input=FalInput,
    phases=PHASES,
    description="A fal queue request, its files copied into genwire.",
    time_limit_s=TIME_LIMIT_S,
    providers=("fal",),
)
async def run_fal(ctx: PipelineContext, params: FalInput) -> JsonObject:
    request = RemoteRequest(params.model, params.input)
    return await _output(ctx, "fal", request, params.timeout_s)


@pipeline(
    "runware",
    input=RunwareInput,
    phases=PHASES,
    description="A Runware task (image, video or audio), its files copied into genwire.",
    time_limit_s=TIME_LIMIT_S,
    providers=("runware",),
)
async def run_runware(ctx: PipelineContext, params: RunwareInput) -> JsonObject:
    request = RemoteRequest(params.model, params.input, task_type=params.task_type)
    return await _output(ctx, "runware", request, params.timeout_s)


async def _output(
    ctx: PipelineContext, provider: str, request: RemoteRequest, timeout_s: float
) -> JsonObject:
    """One call, through this pipeline's phases; the job's output."""
    made = await ctx.run_remote(provider, request, timeout_s=timeout_s, phases=RemotePhases())
    return made.output
