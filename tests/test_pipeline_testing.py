"""The test double genwire ships for pipeline authors records what a pipeline did."""

from __future__ import annotations

from pathlib import Path

import pytest

from genwire.models import StepState
from genwire.pipelines import PipelineError
from genwire.pipelines.providers import run_runware
from genwire.pipelines.synthetic import run_synthetic
from genwire.pipelines.testing import run_pipeline


async def test_a_run_records_phases_progress_warnings_and_artifacts(tmp_path: Path) -> None:
    run = await run_pipeline(
        run_synthetic, {"steps": 4, "step_ms": 1, "warn_at": 2, "output_bytes": 1000}, tmp_path
    )
    reporter = run.reporter
    assert run.output is not None
    assert reporter.started_phases() == ["work", "output"]
    assert reporter.reports[-1].state is StepState.COMPLETED
    assert reporter.reports[-1].progress == 100
    assert [message for message, _ in reporter.warnings] == ["synthetic warning at step 2"]
    assert [r.message for r in reporter.reports if r.message] == [
        f"step {n}/4" for n in range(1, 5)
    ]
    (artifact,) = reporter.artifacts.values()
    assert run.output["artifact_ids"] == [artifact.id]
    assert reporter.file("output.bin").stat().st_size == artifact.size_bytes == 1000


async def test_what_a_pipeline_raises_is_raised_to_the_test(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="synthetic failure at step 2"):
        await run_pipeline(run_synthetic, {"steps": 3, "step_ms": 1, "fail_at": 2}, tmp_path)


async def test_a_provider_pipeline_without_providers_says_so(tmp_path: Path) -> None:
    raw = {"task_type": "imageInference", "model": "runware:100@1", "input": {}}
    with pytest.raises(PipelineError, match="remote providers are not available"):
        await run_pipeline(run_runware, raw, tmp_path)
