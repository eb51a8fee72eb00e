"""Every operation of `/openapi.json`, fuzzed by schemathesis against a live server:
no answer is a 5xx, and every answer is one the document declares, with its status,
content type and body schema (SPEC §3: bad input gets a clear 4xx, never a 500).

Examples are valid and invalid (schemathesis' positive and negative modes), a
bounded number per operation. Streams end by themselves here: the server's maximum
stream lifetime is cut to a fraction of a second (SPEC §4.6), and long-polls are
asked to wait at most that long. Valid creates queue real jobs (the document has each
pipeline's input): each job gets that long too, however long its input asks for.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from genwire.api import create_app, streams
from genwire.api.streams import MAX_POLL_WAIT_S
from genwire.config import Settings
from tests import pipelines
from tests.conftest import ThreadedServer

#: Seconds a stream lives, a long-poll waits and a job runs, so that no example hangs.
SHORT_S = 0.3

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("fuzzed"),
        stream_lifetime_s=SHORT_S,
        keepalive_s=SHORT_S,
        # A job timed out is told to stop (test.blocks' thread then ends); one only
        # shut down is not, and would hold the process past the test.
        job_timeout_s=SHORT_S,
        shutdown_grace_s=SHORT_S,
    )
    # A poll told nothing waits SHORT_S here too: `bound_the_wait` may miss a spelling
    # of `wait` that the server reads as "none" (the CI run that timed out at 5 s).
    with (
        pytest.MonkeyPatch.context() as patch,
        ThreadedServer(create_app(settings, pipelines.test_registry())) as server,
    ):
        patch.setattr(streams, "DEFAULT_POLL_WAIT_S", SHORT_S)
        yield server


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def operations(url: str) -> list[APIOperation]:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def bound_the_wait(case: Case) -> None:
    """A long-poll waits 30 s when told nothing (or an empty `wait`), and up to 60 s
    when told so: any `wait` the server would read that way becomes SHORT_S. The
    server reads the last of repeated values, with `float()`."""
    if not case.path.endswith("/poll"):
        return
    query = dict(case.query or {})
    wait = query.get("wait")
    if isinstance(wait, list):
        wait = wait[-1] if wait else None
    try:
        long = wait is None or wait == "" or float(wait) > SHORT_S
    except (TypeError, ValueError):
        long = False  # the server answers 400 at once
    if long:
        query["wait"] = SHORT_S
    case.query = query


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_as_documented(
    mode: GenerationMode, served: ThreadedServer, session: requests.Session
) -> None:
    """One hypothesis run per operation (schemathesis' pytest plugin cannot take a
    schema from a fixture under pytest 9: it sets `node._nodeid`, which is gone);
    every operation runs, and the failures of all of them are reported together."""

    failures: dict[str, BaseException] = {}
    for operation in operations(served.url):

        @settings(
            max_examples=25,
            deadline=None,
            phases=[Phase.generate],  # a failure is reported as found: shrinking is unbounded
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def answers_as_documented(case: Case) -> None:
            bound_the_wait(case)
            # A poll's ceiling is above the longest wait it may be told (60 s), so a wait
            # the hook missed is slow, never a failure; anything else answers at once.
            timeout = MAX_POLL_WAIT_S + 5 if case.path.endswith("/poll") else 5
            case.call_and_validate(
                base_url=served.url, session=session, checks=CHECKS, timeout=timeout
            )

        try:
            answers_as_documented()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE, operation.label  # nothing to get wrong
        except Exception as error:
            failures[operation.label] = error
    assert not failures, "\n\n".join(f"{label}: {error}" for label, error in failures.items())
