"""The pipeline API and the built-in pipelines."""

from genwire.pipelines.base import (
    JobCancelled,
    Phase,
    Pipeline,
    PipelineContext,
    PipelineError,
    PipelineRegistry,
    pipeline,
)


def default_registry() -> PipelineRegistry:
    """The built-in pipelines: demo.video, demo.image, demo.synthetic, and the
    remote providers replicate, fal and runware."""
    from genwire.pipelines.demo_image import demo_image
    from genwire.pipelines.demo_video import demo_video
    from genwire.pipelines.providers import run_fal, run_replicate, run_runware
    from genwire.pipelines.synthetic import run_synthetic

    return PipelineRegistry(
        [demo_video, demo_image, run_synthetic, run_replicate, run_fal, run_runware]
    )


__all__ = [
    "JobCancelled",
    "Phase",
    "Pipeline",
    "PipelineContext",
    "PipelineError",
    "PipelineRegistry",
    "default_registry",
    "pipeline",
]
