"""What the sync and async clients share: requests built, answers read and the
download plan, as pure code with no I/O of its own (the state of `events()` is in
`genwire.client._transports`)."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from genwire.client.errors import ApiError, DownloadFailed, error_for, parse_retry_after
from genwire.client.types import Artifact

DEFAULT_URL = "http://127.0.0.1:8000"
#: Pauses before each resend of a create; resending is safe only under its
#: Idempotency-Key, which every create carries (SPEC §3).
CREATE_RETRY_DELAYS_S: tuple[float, ...] = (1.0, 2.0, 4.0)
#: Answers of a gateway or an overloaded server, after which a create may be resent.
RETRYABLE_CREATE_STATUSES = frozenset({502, 503, 504})
#: Answers whose `Retry-After` says when to come back: a limit met, or an overloaded
#: server (SPEC §3).
RETRY_AFTER_STATUSES = frozenset({429, 503})
#: The longest `Retry-After` the client waits out before sending a call again; a
#: longer one reaches the caller at once (`RateLimited.retry_after` says how long)
#: rather than block it that long. `events()` waits at most this long, then resumes.
RETRY_AFTER_CAP_S = 30.0
#: How many times a call other than a create is sent again on the server's
#: `Retry-After` (a create follows `create_retry_delays`).
RETRY_AFTER_RESENDS = 3
DOWNLOAD_CHUNK_BYTES = 64 * 1024
PARTIAL_SUFFIX = ".part"


@dataclass(frozen=True)
class Call:
    """One HTTP request, ready for `httpx.Client.request` or its async twin."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    #: Sending it twice does what sending it once does (a cancel, SPEC §3).
    idempotent: bool = False

    @property
    def resendable(self) -> bool:
        """Whether it may be sent again: a GET, an idempotent call, or a create under
        its Idempotency-Key (the server answers a resend with the job it made)."""
        return self.method == "GET" or self.idempotent or "Idempotency-Key" in self.headers

    def request_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"params": self.params, "headers": self.headers}
        if self.json is not None:
            kwargs["json"] = self.json
        if self.timeout is not None:
            kwargs["timeout"] = self.timeout
        return kwargs


def server_url(server: str | None) -> str:
    return (server or os.environ.get("GENWIRE_URL") or DEFAULT_URL).rstrip("/")


def auth_headers(api_key: str | None) -> dict[str, str]:
    key = api_key if api_key is not None else os.environ.get("GENWIRE_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


def segment(identifier: str) -> str:
    """An id as one path segment: `a/b` or `../x` can never reach another route."""
    return quote(identifier, safe="")


def job_path(job_id: str) -> str:
    """The path of a job's routes; `/events`, `/poll` and `/cancel` sit below it."""
    return f"/api/jobs/{segment(job_id)}"


def pipelines_call() -> Call:
    return Call("GET", "/api/pipelines")


def submit_call(
    pipeline: str,
    input: Mapping[str, Any],
    *,
    idempotency_key: str | None,
    wait: int | None,
    metadata: Mapping[str, Any] | None,
    project_id: str | None,
    webhook: Mapping[str, Any] | None,
) -> Call:
    """The create of a job. It always carries an Idempotency-Key, so resending it is safe."""
    headers = {"Idempotency-Key": idempotency_key or new_idempotency_key()}
    if wait is not None:
        headers["Prefer"] = f"wait={wait}"
    body: dict[str, Any] = {"pipeline": pipeline, "input": dict(input)}
    if metadata:
        body["metadata"] = dict(metadata)
    if project_id is not None:
        body["project_id"] = project_id
    if webhook is not None:
        body["webhook"] = dict(webhook)
    # A `Prefer: wait` answer may take the whole wait: the read timeout must outlast it.
    return Call("POST", "/api/jobs", json=body, headers=headers, timeout=(wait or 0) + 30.0)


def get_call(job_id: str) -> Call:
    return Call("GET", job_path(job_id))


def list_call(filters: Mapping[str, Any]) -> Call:
    params = {name: value for name, value in filters.items() if value is not None}
    return Call("GET", "/api/jobs", params=params)


def cancel_call(job_id: str) -> Call:
    return Call("POST", f"{job_path(job_id)}/cancel", idempotent=True)


def create_project_call(
    clips: Sequence[Mapping[str, Any]],
    *,
    name: str | None,
    webhook: Mapping[str, Any] | None,
    idempotency_key: str | None,
) -> Call:
    body: dict[str, Any] = {"clips": [dict(clip) for clip in clips]}
    if name is not None:
        body["name"] = name
    if webhook is not None:
        body["webhook"] = dict(webhook)
    headers = {"Idempotency-Key": idempotency_key or new_idempotency_key()}
    return Call("POST", "/api/projects", json=body, headers=headers)


def get_project_call(project_id: str) -> Call:
    return Call("GET", f"/api/projects/{segment(project_id)}")


def cancel_project_call(project_id: str) -> Call:
    return Call("POST", f"/api/projects/{segment(project_id)}/cancel", idempotent=True)


def health_call() -> Call:
    return Call("GET", "/healthz")


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def api_error(response: httpx.Response) -> ApiError:
    """The exception of an answer of 400 and above; its body must have been read."""
    try:
        problem = response.json()
    except ValueError:
        problem = {"detail": response.text or response.reason_phrase}
    return error_for(
        response.status_code,
        problem if isinstance(problem, dict) else {},
        response.headers.get("retry-after"),
    )


def read_json(response: httpx.Response) -> Any:
    """The JSON of a successful answer; an `ApiError` subclass for any other."""
    if response.status_code >= 400:
        raise api_error(response)
    return response.json()


def retry_after(response: httpx.Response) -> float | None:
    """The seconds a 429 or 503 answer asks to wait (`Retry-After`, delay-seconds or an
    HTTP-date); None for another answer, or one that does not say."""
    if response.status_code not in RETRY_AFTER_STATUSES:
        return None
    return parse_retry_after(response.headers.get("retry-after"))


class Resends:
    """Whether, and after how long, one call is sent again; the clients do the sleeping.

    A resendable call answered 429 or 503 with a `Retry-After` of at most `cap_s` is
    sent again after that long, the server's word replacing the client's own pauses;
    a longer one is the caller's at once. A create (`create_delays` given) is also sent
    again after a broken connection or a 502/503/504 that names no time, after each of
    its delays in turn; its resends, on the server's word or not, are as many as its
    delays. Any other call is sent again at most `RETRY_AFTER_RESENDS` times.
    """

    def __init__(
        self, call: Call, cap_s: float, create_delays: Sequence[float] | None = None
    ) -> None:
        self.call = call
        self.cap_s = cap_s
        self.create_delays = tuple(create_delays or ())
        self.budget = RETRY_AFTER_RESENDS if create_delays is None else len(self.create_delays)
        self.resent = 0

    def after_answer(self, response: httpx.Response) -> float | None:
        """The pause before sending the call again; None: this answer is the caller's."""
        wait = retry_after(response) if self.call.resendable else None
        if wait is not None:
            return self._again(wait if wait <= self.cap_s else None)
        if response.status_code in RETRYABLE_CREATE_STATUSES:
            return self._again(self._create_delay())
        return None

    def after_break(self) -> float | None:
        """The pause before sending a create again after a broken connection; None:
        the break is the caller's (a call other than a create may have been handled)."""
        return self._again(self._create_delay())

    def _create_delay(self) -> float | None:
        if self.resent < len(self.create_delays):
            return self.create_delays[self.resent]
        return None

    def _again(self, pause: float | None) -> float | None:
        if pause is None or self.resent >= self.budget:
            return None
        self.resent += 1
        return pause


class DownloadPlan:
    """Where an artifact's bytes go, and how far an earlier try got.

    The bytes land in `<target>.part`, renamed to `target` once their size and sha256
    match the artifact's. A partial file left by an earlier try is resumed with
    `Range` and `If-Range` (RFC 9110 §14.2, §13.1.5): a 206 answer appends to it, a 200
    (the representation changed, or ranges are not served) starts over.
    """

    def __init__(self, artifact: Artifact, dest: str | os.PathLike[str]) -> None:
        self.artifact = artifact
        dest_path = Path(dest)
        if dest_path.is_dir():
            dest_path = dest_path / (Path(artifact.name).name or artifact.id)
        self.target = dest_path
        self.partial = dest_path.with_name(dest_path.name + PARTIAL_SUFFIX)
        size = self.partial.stat().st_size if self.partial.is_file() else 0
        # A partial as long as the artifact or longer cannot be resumed by a range.
        self.offset = size if 0 < size < artifact.size_bytes else 0

    def headers(self) -> dict[str, str]:
        if not self.offset:
            return {}
        # The server's strong ETag of an artifact is its sha256, quoted (it never changes).
        return {"Range": f"bytes={self.offset}-", "If-Range": f'"{self.artifact.sha256}"'}

    def open_mode(self, response: httpx.Response) -> str:
        """How to open the partial file for this answer: append to it, or start over."""
        if response.status_code >= 400:
            raise api_error(response)
        return "ab" if response.status_code == 206 and self.offset else "wb"

    def finish(self) -> Path:
        """Check the bytes and move them into place; a mismatch removes them."""
        size = self.partial.stat().st_size
        digest = hashlib.sha256()
        with self.partial.open("rb") as handle:
            while chunk := handle.read(1024 * 1024):
                digest.update(chunk)
        if size != self.artifact.size_bytes or digest.hexdigest() != self.artifact.sha256:
            self.partial.unlink(missing_ok=True)
            raise DownloadFailed(
                f"{self.artifact.name}: got {size} bytes with sha256 {digest.hexdigest()}, "
                f"expected {self.artifact.size_bytes} bytes with sha256 {self.artifact.sha256}"
            )
        self.partial.replace(self.target)
        return self.target
