"""`--storage s3://BUCKET/PREFIX` against a real S3 server (moto's, on loopback):
the storage itself, and jobs whose files any API node streams from the bucket with
the same Range, ETag, tenancy and problems as from the data dir."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from genwire.errors import StorageUnavailable
from genwire.models import JsonObject
from genwire.storage import LocalStorage, StorageNotInstalled, open_storage
from genwire.storage.base import READ_CHUNK_BYTES
from genwire.storage.s3 import S3Storage
from tests.http_calls import LiveServer, assert_problem, client_of, create, wait_for_status
from tests.s3_server import Bucket, S3Server, new_bucket

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
SIZE = 1000  #: a job's artifact here: 0, 1, …, 255, 0, 1, …


@pytest.fixture(scope="module")
def shared_s3() -> Iterator[S3Server]:
    server = S3Server()
    yield server
    server.stop()


@pytest.fixture
def bucket(shared_s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    return new_bucket(shared_s3, monkeypatch)


@pytest.fixture
def own_s3() -> Iterator[S3Server]:
    """A server of the test's own, which it may stop."""
    server = S3Server()
    yield server
    server.stop()


def pattern(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


def finished_job(http: httpx.Client, output_bytes: int = SIZE) -> JsonObject:
    body = {
        "pipeline": "demo.synthetic",
        "input": {"steps": 1, "step_ms": 1, "output_bytes": output_bytes},
    }
    return wait_for_status(http, create(http, body)["id"], TERMINAL)


def artifact_url(job: JsonObject) -> str:
    assert job["status"] == "succeeded", job
    url: str = job["artifacts"][0]["url"]
    return url


# -- the storage ----------------------------------------------------------------------


def test_put_uploads_the_file_under_the_prefix_and_takes_the_source(
    bucket: Bucket, tmp_path: Path
) -> None:
    storage = S3Storage.from_url(bucket.url("deep/prefix/"), tmp_path / "work")
    source = tmp_path / "clip.mp4"
    source.write_bytes(pattern(5000))

    stored = storage.put(source, "job_1", "art_1", "my clip.mp4", None)

    assert stored.path == "job_1/art_1-my_clip.mp4"
    assert stored.size_bytes == 5000
    assert stored.sha256 == hashlib.sha256(pattern(5000)).hexdigest()
    assert stored.media_type == "video/mp4"
    assert not source.exists()
    assert bucket.keys() == ["deep/prefix/job_1/art_1-my_clip.mp4"]
    assert bucket.content("deep/prefix/job_1/art_1-my_clip.mp4") == pattern(5000)
    head = bucket.client.head_object(Bucket=bucket.name, Key=bucket.keys()[0])
    assert head["ContentType"] == "video/mp4"
    assert storage.size_of(stored.path) == 5000


def test_a_large_file_goes_up_in_parts_and_comes_back_in_bounded_chunks(
    bucket: Bucket, tmp_path: Path
) -> None:
    storage = S3Storage.from_url(bucket.url(), tmp_path / "work")
    size = 9 * 1024 * 1024  # past boto3's 8 MiB multipart threshold
    source = tmp_path / "big.bin"
    source.write_bytes(pattern(size))

    stored = storage.put(source, "job_1", "art_1", "big.bin", None)

    head = bucket.client.head_object(Bucket=bucket.name, Key=f"artifacts/{stored.path}")
    assert re.fullmatch(r'"[0-9a-f]+-2"', head["ETag"]), "a multipart ETag names its parts"
    chunks = list(storage.read(stored.path, 0, size))
    assert max(len(chunk) for chunk in chunks) <= READ_CHUNK_BYTES
    assert hashlib.sha256(b"".join(chunks)).hexdigest() == stored.sha256


def test_read_gives_exactly_the_bytes_asked_for(bucket: Bucket, tmp_path: Path) -> None:
    storage = S3Storage.from_url(bucket.url(), tmp_path / "work")
    source = tmp_path / "a.bin"
    source.write_bytes(pattern(1000))
    stored = storage.put(source, "job_1", "art_1", "a.bin", None)

    assert b"".join(storage.read(stored.path, 100, 300)) == pattern(1000)[100:300]
    assert b"".join(storage.read(stored.path, 999, 1000)) == pattern(1000)[999:]
    assert list(storage.read(stored.path, 5, 5)) == []


def test_remove_deletes_the_object_and_a_gone_one_has_no_size(
    bucket: Bucket, tmp_path: Path
) -> None:
    storage = S3Storage.from_url(bucket.url(), tmp_path / "work")
    source = tmp_path / "a.bin"
    source.write_bytes(b"bytes")
    stored = storage.put(source, "job_1", "art_1", "a.bin", None)

    storage.remove(stored.path)

    assert bucket.keys() == []
    assert storage.size_of(stored.path) is None
    storage.remove(stored.path)  # already gone: no error


@pytest.mark.parametrize("path", ["../other/file", "/etc/passwd", "job/../../x"])
def test_no_path_escapes_the_prefix(bucket: Bucket, tmp_path: Path, path: str) -> None:
    storage = S3Storage.from_url(bucket.url(), tmp_path / "work")

    with pytest.raises(ValueError, match="escapes the storage root"):
        storage.size_of(path)


def test_attempts_work_on_local_disk_in_the_data_dir(bucket: Bucket, tmp_path: Path) -> None:
    storage = open_storage(bucket.url(), tmp_path / "data")

    scratch = storage.scratch_dir("job_1", 2)

    assert scratch == tmp_path / "data" / "work" / "job_1" / "2"
    assert scratch.is_dir()
    storage.discard_scratch("job_1", 2)
    assert not scratch.exists()


def test_a_file_url_names_a_local_folder_beside_the_data_dirs_work(tmp_path: Path) -> None:
    storage = open_storage(f"file://{tmp_path / 'shared'}", tmp_path / "data")
    source = tmp_path / "a.txt"
    source.write_text("hello")

    stored = storage.put(source, "job_1", "art_1", "a.txt", None)

    assert isinstance(storage, LocalStorage)
    assert (tmp_path / "shared" / stored.path).read_text() == "hello"
    assert storage.scratch_dir("job_1", 1) == tmp_path / "data" / "work" / "job_1" / "1"


def test_a_storage_that_does_not_answer_raises_storage_unavailable(
    own_s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bucket = new_bucket(own_s3, monkeypatch)
    storage = S3Storage.from_url(bucket.url(), tmp_path / "work")
    source = tmp_path / "a.bin"
    source.write_bytes(b"bytes")
    own_s3.stop()

    with pytest.raises(StorageUnavailable, match=re.escape("storing job_1/art_1-a.bin failed")):
        storage.put(source, "job_1", "art_1", "a.bin", None)
    assert source.exists(), "the file stays where it was"
    with pytest.raises(StorageUnavailable):
        storage.size_of("job_1/art_1-a.bin")
    with pytest.raises(StorageUnavailable):
        list(storage.read("job_1/art_1-a.bin", 0, 5))


def test_s3_without_boto3_is_refused_with_the_package_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    monkeypatch.delitem(sys.modules, "genwire.storage.s3")

    with pytest.raises(StorageNotInstalled, match=re.escape("pip install 'genwire[s3]'")):
        open_storage("s3://bucket/prefix", tmp_path)


def test_the_worker_command_says_what_to_install_when_boto3_is_missing(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'genwire.db'}"
    program = (
        "import sys; sys.modules['boto3'] = None\n"
        "from genwire.cli import main\n"
        f"main(['worker', '--database', {database!r}, '--storage', 's3://bucket/prefix'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )

    assert result.returncode == 1, result.stderr
    assert "pip install 'genwire[s3]'" in result.stderr
    assert "Traceback" not in result.stderr


# -- jobs, through the API ------------------------------------------------------------


def test_a_jobs_file_lands_in_the_bucket_and_downloads_with_range_and_etag(
    live_server: LiveServer, bucket: Bucket
) -> None:
    server = live_server(storage_url=bucket.url())
    with client_of(server) as http:
        job = finished_job(http)
        url = artifact_url(job)
        artifact = job["artifacts"][0]

        [key] = bucket.keys()
        assert key == f"artifacts/{job['id']}/{artifact['id']}-output.bin"
        assert bucket.content(key) == pattern(SIZE)
        assert not list(server.app.state.settings.data_dir.rglob("*.bin"))

        whole = http.get(url)
        assert whole.status_code == 200
        assert whole.content == pattern(SIZE)
        assert whole.headers["etag"] == f'"{artifact["sha256"]}"'
        assert whole.headers["content-type"] == "application/octet-stream"
        ranged = http.get(url, headers={"Range": "bytes=0-99"})
        assert ranged.status_code == 206
        assert ranged.headers["content-range"] == f"bytes 0-99/{SIZE}"
        assert ranged.content == pattern(SIZE)[:100]
        revalidated = http.get(url, headers={"If-None-Match": whole.headers["etag"]})
        assert revalidated.status_code == 304
        assert revalidated.content == b""


BIG = 600_000  #: more than two chunks of a read
ETAG = "<etag>"
#: (method, headers, expected status, expected body: a slice of the file, or None)
FILE_REQUESTS: list[tuple[str, dict[str, str], int, slice | None]] = [
    ("GET", {}, 200, slice(0, BIG)),
    ("GET", {"Range": "bytes=0-99"}, 206, slice(0, 100)),
    ("GET", {"Range": "bytes=-100"}, 206, slice(BIG - 100, BIG)),
    ("GET", {"Range": "bytes=250000-"}, 206, slice(250_000, BIG)),
    ("GET", {"Range": f"bytes={BIG}-"}, 416, None),
    ("GET", {"Range": "bytes=0-9,20-29,25-40"}, 206, None),
    ("GET", {"Range": "bytes=10-20", "If-Range": '"other"'}, 200, slice(0, BIG)),
    ("GET", {"Range": "bytes=10-20", "If-Range": ETAG}, 206, slice(10, 21)),
    ("GET", {"Range": "lines=1-2"}, 200, slice(0, BIG)),
    ("GET", {"If-None-Match": ETAG}, 304, slice(0, 0)),
    ("HEAD", {}, 200, slice(0, 0)),
    ("HEAD", {"Range": "bytes=0-99"}, 206, slice(0, 0)),
]
COMPARED_HEADERS = (
    "content-type",
    "content-length",
    "content-range",
    "accept-ranges",
    "etag",
    "cache-control",
    "content-disposition",
)


def test_the_bucket_answers_every_file_request_as_the_data_dir_does(
    live_server: LiveServer, bucket: Bucket
) -> None:
    answers = {}
    for storage_url in (None, bucket.url()):
        with client_of(live_server(storage_url=storage_url)) as http:
            url = artifact_url(finished_job(http, BIG))
            etag = http.head(url).headers["etag"]
            answers[storage_url] = [
                answer_of(http.request(method, url, headers=with_etag(headers, etag)))
                for method, headers, _, _ in FILE_REQUESTS
            ]

    assert answers[bucket.url()] == answers[None]
    for (status, _, body), (_, _, expected_status, expected) in zip(
        answers[None], FILE_REQUESTS, strict=True
    ):
        assert status == expected_status
        if expected is not None:
            assert body == pattern(BIG)[expected]
    multipart = answers[None][5][2]
    assert multipart.count(b"--BOUNDARY\r\n") == 2
    assert b"Content-Range: bytes 20-40/600000\r\n\r\n" + pattern(BIG)[20:41] in multipart


def with_etag(headers: dict[str, str], etag: str) -> dict[str, str]:
    return {name: etag if value == ETAG else value for name, value in headers.items()}


def answer_of(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body, with a multipart boundary (random) named BOUNDARY."""
    content_type = response.headers.get("content-type", "")
    boundary = content_type.partition("boundary=")[2]
    body = response.content
    if boundary:
        content_type = content_type.replace(boundary, "BOUNDARY")
        body = body.replace(boundary.encode(), b"BOUNDARY")
    headers = {name: response.headers.get(name, "") for name in COMPARED_HEADERS}
    return response.status_code, {**headers, "content-type": content_type}, body


def test_another_tenants_key_gets_a_404_for_a_file_in_the_bucket(
    live_server: LiveServer, bucket: Bucket
) -> None:
    server = live_server(storage_url=bucket.url(), api_keys={"k1": "alice", "k2": "bob"})
    with client_of(server, "k1") as alice, client_of(server, "k2") as bob:
        url = artifact_url(finished_job(alice))

        assert alice.get(url).content == pattern(SIZE)
        assert_problem(bob.get(url), 404, "not-found")
        assert_problem(bob.get(url, headers={"Range": "bytes=0-9"}), 404, "not-found")


@pytest.mark.parametrize("where", ["data-dir", "bucket"])
def test_a_file_gone_from_storage_is_a_404_problem(
    live_server: LiveServer, bucket: Bucket, where: str
) -> None:
    server = live_server(storage_url=bucket.url() if where == "bucket" else None)
    with client_of(server) as http:
        url = artifact_url(finished_job(http))
        if where == "bucket":
            [key] = bucket.keys()
            bucket.client.delete_object(Bucket=bucket.name, Key=key)
        else:
            [path] = (server.app.state.settings.data_dir / "files").rglob("*.bin")
            path.unlink()

        problem = assert_problem(http.get(url), 404, "not-found")
        assert "gone from storage" in problem["detail"]
        assert_problem(http.get(url, headers={"If-None-Match": "*"}), 404, "not-found")
        assert http.head(url).status_code == 404


def test_a_download_while_the_bucket_is_down_is_a_503_and_works_once_it_is_back(
    live_server: LiveServer, own_s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = new_bucket(own_s3, monkeypatch)
    server = live_server(storage_url=bucket.url())
    with client_of(server) as http:
        job = finished_job(http)
        url = artifact_url(job)
        own_s3.stop()

        problem = assert_problem(http.get(url), 503, "storage-unavailable")
        assert own_s3.endpoint not in problem["detail"], "the storage's words stay in the log"
        assert http.get(f"/api/jobs/{job['id']}").json() == job

        own_s3.start()
        assert http.get(url).content == pattern(SIZE)


def test_a_job_whose_file_the_bucket_cannot_take_fails_retryably_and_says_so(
    live_server: LiveServer, own_s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = new_bucket(own_s3, monkeypatch)
    server = live_server(storage_url=bucket.url())
    own_s3.stop()
    with client_of(server) as http:
        failed = finished_job(http)

        assert failed["status"] == "failed"
        assert failed["attempt"] == 1, "failed at once, not rerun while the storage is down"
        assert failed["artifacts"] == []
        error = failed["error"]
        assert error["code"] == "storage_unavailable"
        assert error["retryable"] is True
        events = http.get(f"/api/jobs/{failed['id']}/poll", params={"after": 0}).json()
        assert events["events"][-1]["type"] == "job-failed"
        assert events["events"][-1]["error"] == error

        own_s3.start()
        assert artifact_url(finished_job(http)).startswith("/api/files/")
        assert len(bucket.keys()) == 1
