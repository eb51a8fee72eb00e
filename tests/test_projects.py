"""Projects (SPEC §3): a batch of clips created together, counted as each clip ends,
completed once. In-process on SQLite and PostgreSQL with a real WorkerPool, then over
HTTP against a real uvicorn."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from httpx_sse import connect_sse
from sqlalchemy.engine import Connection

from genwire.bus import topics
from genwire.errors import IdempotencyMismatch, InputRejected, StateConflict, UnknownId
from genwire.models import Artifact, Event, EventType, Job, JobStatus, JsonObject, utc_now
from genwire.projects import CreateProject, ProjectService, project_snapshot
from genwire.service import CreateJob, JobService
from genwire.store import schema
from genwire.store.projects import ProjectView
from genwire.transitions.projects import main_file_url
from genwire.worker import WorkerPool, WorkerSettings
from tests.waiting import wait_until

TENANT = "tenant-a"
#: Upper bound of every wait: far above what each behaviour needs, far below a hang.
WAIT_S = 15.0
COUNT_FIELDS = ("total_clips", "completed", "pending", "failed", "cancelled", "all_complete")


def synthetic(**fields: Any) -> CreateJob:
    return CreateJob("demo.synthetic", {"steps": 3, "step_ms": 1, **fields})


THREE_CLIPS = CreateProject([synthetic(output_bytes=16) for _ in range(3)], name="three clips")


def counts(**expected: Any) -> JsonObject:
    """Counts of a project; `all_complete` follows from `pending`."""
    return {**expected, "all_complete": expected["pending"] == 0}


def counts_of(item: JsonObject) -> JsonObject:
    return {name: item[name] for name in COUNT_FIELDS}


@pytest.fixture
def projects(service: JobService) -> ProjectService:
    return ProjectService(service)


@pytest.fixture
async def pool(service: JobService) -> AsyncIterator[WorkerPool]:
    """Three worker slots, so a project's clips run side by side."""
    workers = WorkerPool(
        service, WorkerSettings(concurrency=3, lease_ttl_s=5, shutdown_grace_s=0.5)
    )
    await workers.start()
    yield workers
    async with asyncio.timeout(WAIT_S):
        await workers.stop()


async def project_events(service: JobService, project_id: str) -> list[Event]:
    """The project stream's events: its own and its clips', in log order."""
    events = schema.events
    query = (
        sa.select(events.c.seq, events.c.tenant, events.c.job_id, events.c.type, events.c.payload)
        .where(events.c.project_id == project_id)
        .order_by(events.c.seq)
    )

    def read(connection: Connection) -> list[Event]:
        return [
            Event(int(seq), tenant, job_id, EventType(kind), orjson.loads(payload), project_id)
            for seq, tenant, job_id, kind, payload in connection.execute(query)
        ]

    return await service.store.read(read)


def own_events(events: list[Event]) -> list[Event]:
    """The events of the project itself (no job)."""
    return [event for event in events if event.job_id is None]


async def completed(projects: ProjectService, project_id: str) -> ProjectView:
    """The project once no clip is pending, woken by its bus topic, not polling."""
    async with asyncio.timeout(WAIT_S):
        with projects.jobs.bus.subscribe(topics.project(project_id)) as changed:
            while True:
                view = await projects.get_project(project_id, TENANT)
                if view.project.completed_at is not None:
                    return view
                await changed.wait(None)


async def clip_running(projects: ProjectService, job_id: str) -> None:
    async with asyncio.timeout(WAIT_S):
        with projects.jobs.bus.subscribe(topics.job(job_id)) as changed:
            while (await projects.jobs.get_job(job_id)).status is not JobStatus.RUNNING:
                await changed.wait(None)


# -- creating -------------------------------------------------------------------------


async def test_a_project_queues_all_its_clips_then_its_own_status_in_one_go(
    projects: ProjectService,
) -> None:
    view, created = await projects.create_project(TENANT, THREE_CLIPS)

    assert created
    snapshot = project_snapshot(view)
    assert snapshot["id"].startswith("prj_")
    assert snapshot["name"] == "three clips"
    assert counts_of(snapshot) == counts(
        total_clips=3, completed=0, pending=3, failed=0, cancelled=0
    )
    clip_ids = [job["id"] for job in snapshot["jobs"]]
    assert snapshot["clips"] == dict.fromkeys(clip_ids, "pending")
    assert [job["status"] for job in snapshot["jobs"]] == ["queued"] * 3
    assert [job["queue_position"] for job in snapshot["jobs"]] == [0, 1, 2]
    assert {job["project_id"] for job in snapshot["jobs"]} == {snapshot["id"]}
    assert snapshot["urls"] == {
        "self": f"/api/projects/{snapshot['id']}",
        "events": f"/api/projects/{snapshot['id']}/events",
        "cancel": f"/api/projects/{snapshot['id']}/cancel",
    }

    events = await project_events(projects.jobs, snapshot["id"])
    assert [(event.type, event.job_id) for event in events] == [
        *((EventType.JOB_STATUS, clip_id) for clip_id in clip_ids),
        (EventType.PROJECT_STATUS, None),
    ]
    assert events[-1].payload["project_id"] == snapshot["id"]
    assert counts_of(events[-1].payload) == counts_of(snapshot)
    assert snapshot["last_event_id"] == events[-1].id
    assert project_snapshot(await projects.get_project(snapshot["id"], TENANT)) == snapshot
    listed = await projects.jobs.list_jobs(TENANT, project_id=snapshot["id"])
    assert sorted(job.id for job in listed.items) == clip_ids


async def test_every_clip_is_checked_first_and_errors_name_the_clip(
    projects: ProjectService,
) -> None:
    request = CreateProject(
        [synthetic(), synthetic(steps=-1), CreateJob("no.such.pipeline", {})], name="bad"
    )

    with pytest.raises(InputRejected) as caught:
        await projects.create_project(TENANT, request)

    assert {error.field for error in caught.value.errors} == {
        "clips[1].input.steps",
        "clips[2].pipeline",
    }
    assert (await projects.jobs.list_jobs(TENANT)).items == []


@pytest.mark.parametrize("clips", [0, 101])
async def test_a_project_holds_one_to_a_hundred_clips(projects: ProjectService, clips: int) -> None:
    with pytest.raises(InputRejected) as caught:
        await projects.create_project(TENANT, CreateProject([synthetic()] * clips))

    assert [error.field for error in caught.value.errors] == ["clips"]


async def test_the_same_idempotency_key_and_body_return_the_same_project(
    projects: ProjectService,
) -> None:
    first, _ = await projects.create_project(TENANT, THREE_CLIPS, "key-1")
    again, created = await projects.create_project(TENANT, THREE_CLIPS, "key-1")

    assert not created
    assert again.project.id == first.project.id
    assert [clip.id for clip in again.clips] == [clip.id for clip in first.clips]
    assert len((await projects.jobs.list_jobs(TENANT)).items) == 3


async def test_an_idempotency_key_with_another_body_or_of_a_job_is_a_mismatch(
    projects: ProjectService,
) -> None:
    await projects.create_project(TENANT, THREE_CLIPS, "key-1")
    await projects.jobs.create_job(TENANT, synthetic(), "key-2")

    with pytest.raises(IdempotencyMismatch):
        await projects.create_project(TENANT, CreateProject([synthetic()]), "key-1")
    with pytest.raises(IdempotencyMismatch):
        await projects.create_project(TENANT, CreateProject([synthetic()]), "key-2")
    with pytest.raises(IdempotencyMismatch):
        await projects.jobs.create_job(TENANT, synthetic(), "key-1")

    assert len((await projects.jobs.list_jobs(TENANT)).items) == 4


async def test_concurrent_creates_with_one_idempotency_key_make_one_project(
    projects: ProjectService,
) -> None:
    async with asyncio.timeout(WAIT_S):
        results = await asyncio.gather(
            *(projects.create_project(TENANT, THREE_CLIPS, "key-1") for _ in range(4))
        )

    assert len({view.project.id for view, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, False, False, True]
    assert len((await projects.jobs.list_jobs(TENANT)).items) == 3


# -- running --------------------------------------------------------------------------


@pytest.mark.usefixtures("pool")
async def test_each_clip_end_is_followed_by_project_status_and_completion_comes_once_last(
    projects: ProjectService,
) -> None:
    view, _ = await projects.create_project(TENANT, THREE_CLIPS)

    done = await completed(projects, view.project.id)

    events = await project_events(projects.jobs, view.project.id)
    terminal_at = [index for index, event in enumerate(events) if event.type.is_terminal]
    assert len(terminal_at) == 3
    for index in terminal_at:
        assert events[index + 1].type is EventType.PROJECT_STATUS
    own = own_events(events)
    assert [event.type for event in own] == [EventType.PROJECT_STATUS] * 4 + [
        EventType.PROJECT_COMPLETED
    ]
    assert events[-1] == own[-1]
    assert [event.payload["completed"] for event in own[1:4]] == [1, 2, 3]
    finished = own[-1].payload
    assert counts_of(finished) == counts(
        total_clips=3, completed=3, pending=0, failed=0, cancelled=0
    )
    file_urls = {clip.id: clip.artifacts[0].url for clip in done.clips}
    assert finished["clips"] == file_urls
    snapshot = project_snapshot(done)
    assert snapshot["clips"] == file_urls
    assert counts_of(snapshot) == counts_of(finished)
    assert snapshot["completed_at"] is not None
    assert snapshot["last_event_id"] == own[-1].id


@pytest.mark.usefixtures("pool")
async def test_a_failing_clip_counts_as_failed_and_the_project_still_completes(
    projects: ProjectService,
) -> None:
    request = CreateProject([synthetic(), synthetic(fail_at=1), synthetic()])
    view, _ = await projects.create_project(TENANT, request)

    done = await completed(projects, view.project.id)

    failing = done.clips[1]
    assert failing.status is JobStatus.FAILED
    snapshot = project_snapshot(done)
    assert counts_of(snapshot) == counts(
        total_clips=3, completed=2, pending=0, failed=1, cancelled=0
    )
    assert snapshot["clips"][failing.id] == "failed"
    # A succeeded clip without files points at itself.
    assert snapshot["clips"][done.clips[0].id] == f"/api/jobs/{done.clips[0].id}"
    completions = [
        event
        for event in await project_events(projects.jobs, view.project.id)
        if event.type is EventType.PROJECT_COMPLETED
    ]
    assert len(completions) == 1
    assert completions[0].payload["clips"] == snapshot["clips"]


def test_a_clips_main_file_is_its_first_video_or_image_else_its_first_file() -> None:
    def clip(*types: str) -> Job:
        job = Job(
            id="job_1",
            tenant=TENANT,
            pipeline="demo.video",
            status=JobStatus.SUCCEEDED,
            phase=None,
            progress=100,
            message=None,
            attempt=1,
            max_attempts=3,
            cancel_requested=False,
            created_at=utc_now(),
            started_at=None,
            finished_at=None,
            input={},
            metadata={},
            project_id=None,
            error=None,
            output=None,
            last_event_seq=1,
        )
        job.artifacts = [
            Artifact(f"art_{index}", job.id, f"f{index}", kind, 1, "0" * 64, "p")
            for index, kind in enumerate(types)
        ]
        return job

    assert main_file_url(clip("text/plain", "video/mp4", "image/png")) == "/api/files/art_1"
    assert main_file_url(clip("application/x-subrip", "image/png")) == "/api/files/art_1"
    assert main_file_url(clip("application/json", "text/plain")) == "/api/files/art_0"
    assert main_file_url(clip()) == "/api/jobs/job_1"


# -- cancelling -----------------------------------------------------------------------


async def test_cancelling_a_queued_project_cancels_every_clip_and_completes_it(
    projects: ProjectService,
) -> None:
    view, _ = await projects.create_project(TENANT, THREE_CLIPS)

    cancelled = await projects.cancel_project(view.project.id, TENANT)

    assert [clip.status for clip in cancelled.clips] == [JobStatus.CANCELLED] * 3
    snapshot = project_snapshot(cancelled)
    assert counts_of(snapshot) == counts(
        total_clips=3, completed=0, pending=0, failed=0, cancelled=3
    )
    assert set(snapshot["clips"].values()) == {"cancelled"}
    own = own_events(await project_events(projects.jobs, view.project.id))
    assert [event.type for event in own][-2:] == [
        EventType.PROJECT_STATUS,
        EventType.PROJECT_COMPLETED,
    ]
    assert own[-1].payload["clips"] == snapshot["clips"]
    with pytest.raises(StateConflict):
        await projects.cancel_project(view.project.id, TENANT)


@pytest.mark.usefixtures("pool")
async def test_cancelling_a_project_stops_its_running_clip_through_its_worker(
    projects: ProjectService,
) -> None:
    request = CreateProject([CreateJob("test.sleeps", {"seconds": 30}), synthetic()])
    view, _ = await projects.create_project(TENANT, request)
    sleeper, quick = (clip.id for clip in view.clips)
    await clip_running(projects, sleeper)
    quick_job = await projects.jobs.wait_until_ended(quick, WAIT_S)
    assert quick_job.status is JobStatus.SUCCEEDED

    await projects.cancel_project(view.project.id, TENANT)
    done = await completed(projects, view.project.id)

    assert [clip.status for clip in done.clips] == [JobStatus.CANCELLED, JobStatus.SUCCEEDED]
    assert counts_of(project_snapshot(done)) == counts(
        total_clips=2, completed=1, pending=0, failed=0, cancelled=1
    )
    with pytest.raises(StateConflict):
        await projects.cancel_project(view.project.id, TENANT)


# -- tenants and loose project ids ----------------------------------------------------


async def test_another_tenant_can_neither_see_nor_cancel_nor_join_a_project(
    projects: ProjectService,
) -> None:
    """Regression: a job of another tenant could join a project by naming its id, and
    its events went to that project's stream."""
    view, _ = await projects.create_project(TENANT, CreateProject([synthetic()]))
    project_id = view.project.id

    with pytest.raises(InputRejected) as refused:
        await projects.jobs.create_job(
            "tenant-b", CreateJob("demo.synthetic", {}, project_id=project_id)
        )
    assert [error.field for error in refused.value.errors] == ["project_id"]
    with pytest.raises(UnknownId):
        await projects.get_project(project_id, "tenant-b")
    with pytest.raises(UnknownId):
        await projects.cancel_project(project_id, "tenant-b")

    mine = await projects.get_project(project_id, TENANT)
    assert [clip.id for clip in mine.clips] == [view.clips[0].id]
    assert mine.clips[0].status is JobStatus.QUEUED
    assert len(own_events(await project_events(projects.jobs, project_id))) == 1


async def test_a_job_cannot_join_a_project_that_does_not_exist_or_has_completed(
    projects: ProjectService,
) -> None:
    with pytest.raises(InputRejected):
        await projects.jobs.create_job(
            TENANT, CreateJob("demo.synthetic", {}, project_id="batch-7")
        )
    view, _ = await projects.create_project(TENANT, CreateProject([synthetic()]))
    await projects.cancel_project(view.project.id, TENANT)

    with pytest.raises(InputRejected) as refused:
        await projects.jobs.create_job(
            TENANT, CreateJob("demo.synthetic", {}, project_id=view.project.id)
        )
    assert "completed" in refused.value.errors[0].message


# -- over HTTP ------------------------------------------------------------------------

HTTP_CLIPS: JsonObject = {
    "name": "three clips",
    "clips": [
        {"pipeline": "demo.synthetic", "input": {"steps": 3, "step_ms": 1, "output_bytes": 32}}
    ]
    * 3,
}


def client_of(server: Any, api_key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(base_url=server.url, timeout=30, headers=headers)


@pytest.fixture
def idle_http(live_server: Any) -> Iterator[httpx.Client]:
    """A client of a live server with no workers: clips stay queued until cancelled."""
    with client_of(live_server(workers=0)) as client:
        yield client


def create_project(client: httpx.Client, body: JsonObject = HTTP_CLIPS) -> JsonObject:
    response = client.post("/api/projects", json=body)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/api/projects/{response.json()['id']}"
    project: JsonObject = response.json()
    return project


def wait_until_complete(client: httpx.Client, project_id: str) -> JsonObject:
    def snapshot() -> JsonObject:
        response = client.get(f"/api/projects/{project_id}")
        assert response.status_code == 200, response.text
        project: JsonObject = response.json()
        return project

    return wait_until(
        snapshot,
        f"project {project_id} to complete",
        until=lambda project: project["all_complete"],
        timeout=WAIT_S,
    )


def assert_problem(response: httpx.Response, status: int, code: str) -> JsonObject:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: JsonObject = response.json()
    assert problem["code"] == code
    return problem


def test_a_project_over_http_runs_its_clips_to_files_it_points_at(http: httpx.Client) -> None:
    created = create_project(http)

    assert counts_of(created) == counts(
        total_clips=3, completed=0, pending=3, failed=0, cancelled=0
    )
    done = wait_until_complete(http, created["id"])
    assert counts_of(done) == counts(total_clips=3, completed=3, pending=0, failed=0, cancelled=0)
    assert list(done["clips"]) == [job["id"] for job in created["jobs"]]
    for job in done["jobs"]:
        assert done["clips"][job["id"]] == job["artifacts"][0]["url"]
        download = http.get(done["clips"][job["id"]])
        assert download.status_code == 200
        assert len(download.content) == 32
    assert done["last_event_id"] >= max(job["last_event_id"] for job in done["jobs"])
    listed = http.get("/api/jobs", params={"project_id": created["id"]}).json()["items"]
    assert sorted(job["id"] for job in listed) == sorted(done["clips"])


def test_a_bad_clip_is_a_422_naming_its_index(idle_http: httpx.Client) -> None:
    shape = idle_http.post(
        "/api/projects",
        json={
            "clips": [
                {"pipeline": "demo.synthetic", "input": {}, "webhook": {"url": "http://x"}},
                {"input": {}},
                "not a clip",
            ],
            "name": "",
            "colour": "red",
        },
    )
    assert {
        error["field"] for error in assert_problem(shape, 422, "validation-error")["errors"]
    } == {
        "clips[0].webhook",
        "clips[1].pipeline",
        "clips[2]",
        "name",
        "colour",
    }

    schema_check = idle_http.post(
        "/api/projects",
        json={
            "clips": [
                {"pipeline": "demo.synthetic", "input": {}},
                {"pipeline": "demo.synthetic", "input": {"steps": "many"}},
            ]
        },
    )
    problem = assert_problem(schema_check, 422, "validation-error")
    assert [error["field"] for error in problem["errors"]] == ["clips[1].input.steps"]

    for clips in ([], [{"pipeline": "demo.synthetic"}] * 101, None):
        problem = assert_problem(
            idle_http.post("/api/projects", json={"clips": clips}), 422, "validation-error"
        )
        assert [error["field"] for error in problem["errors"]] == ["clips"]
    assert idle_http.get("/api/jobs").json()["items"] == []


def test_cancelling_a_project_over_http_is_202_then_409(idle_http: httpx.Client) -> None:
    created = create_project(idle_http)

    response = idle_http.post(created["urls"]["cancel"])

    assert response.status_code == 202, response.text
    assert counts_of(response.json()) == counts(
        total_clips=3, completed=0, pending=0, failed=0, cancelled=3
    )
    assert set(response.json()["clips"].values()) == {"cancelled"}
    assert_problem(idle_http.post(created["urls"]["cancel"]), 409, "conflict")


@pytest.mark.parametrize("project_id", ["prj_00000000000000000000000000", "nope", "job_x"])
def test_an_unknown_or_malformed_project_id_is_a_404(
    idle_http: httpx.Client, project_id: str
) -> None:
    assert_problem(idle_http.get(f"/api/projects/{project_id}"), 404, "not-found")
    assert_problem(idle_http.post(f"/api/projects/{project_id}/cancel"), 404, "not-found")


def test_an_idempotent_replay_over_http_is_a_200_with_the_same_project(
    idle_http: httpx.Client,
) -> None:
    headers = {"Idempotency-Key": "batch-1"}
    first = idle_http.post("/api/projects", json=HTTP_CLIPS, headers=headers)
    again = idle_http.post("/api/projects", json=HTTP_CLIPS, headers=headers)
    other = idle_http.post("/api/projects", json={**HTTP_CLIPS, "name": "x"}, headers=headers)

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    assert_problem(other, 422, "idempotency-key-reused")
    assert len(idle_http.get("/api/jobs").json()["items"]) == 3


def test_a_tenant_never_sees_another_tenants_project(live_server: Any) -> None:
    server = live_server(workers=0, api_keys={"k1": "alice", "k2": "bob"})
    with client_of(server, "k1") as alice, client_of(server, "k2") as bob:
        project = create_project(alice)

        assert_problem(bob.get(project["urls"]["self"]), 404, "not-found")
        assert_problem(bob.post(project["urls"]["cancel"]), 404, "not-found")
        assert bob.get("/api/jobs", params={"project_id": project["id"]}).json()["items"] == []
        assert alice.get(project["urls"]["self"]).status_code == 200


def test_a_project_webhook_in_a_private_range_is_refused(idle_http: httpx.Client) -> None:
    body = {**HTTP_CLIPS, "webhook": {"url": "http://127.0.0.1:9/hook"}}

    problem = assert_problem(idle_http.post("/api/projects", json=body), 422, "validation-error")

    assert [error["field"] for error in problem["errors"]] == ["webhook.url"]
    assert idle_http.get("/api/jobs").json()["items"] == []


def test_the_project_stream_carries_every_clip_and_ends_after_project_completed(
    http: httpx.Client,
) -> None:
    project = create_project(http)
    clip_ids = {job["id"] for job in project["jobs"]}

    with connect_sse(http, "GET", project["urls"]["events"]) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(message.data) for message in source.iter_sse() if message.data]

    ids = [event["id"] for event in events]
    assert ids == sorted(set(ids))
    assert events[-1]["type"] == "project-completed"
    assert events[-1]["all_complete"] is True
    assert [event["type"] for event in events].count("project-completed") == 1
    ended = {event["job_id"] for event in events if event["type"] == "job-completed"}
    assert ended == clip_ids
    # Resumed mid-way it yields exactly the rest; at the end it says 204.
    middle = ids[len(ids) // 2]
    with connect_sse(
        http, "GET", project["urls"]["events"], headers={"Last-Event-ID": middle}
    ) as source:
        rest = [json.loads(message.data)["id"] for message in source.iter_sse() if message.data]
    assert rest == ids[ids.index(middle) + 1 :]
    after_end = http.get(project["urls"]["events"], headers={"Last-Event-ID": ids[-1]})
    assert after_end.status_code == 204
