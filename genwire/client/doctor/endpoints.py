"""The checks of plain answers: the server's health, a file and a Range of it, and
each configured provider's key as the server tries it."""

from __future__ import annotations

import tempfile

import httpx

from genwire.client import Artifact, GenwireError
from genwire.client.doctor.session import CONNECT_TIMEOUT_S, Check, Doctor

RANGE_BYTES = 100


def check_health(doctor: Doctor) -> Check:
    try:
        response = doctor.http.get("/healthz", timeout=CONNECT_TIMEOUT_S)
    except httpx.HTTPError as error:
        doctor.reachable = False
        return Check(
            "health",
            "fail",
            f"cannot reach {doctor.server}/healthz: {type(error).__name__}: {error}",
            "Start the server (`genwire serve`) or pass its URL (argument, --server or "
            "GENWIRE_URL); check firewalls and proxies in between.",
        )
    try:
        body = response.json()
    except ValueError:
        body = {}
    status = body.get("status") if isinstance(body, dict) else None
    if response.status_code == 200 and status == "ok":
        version = body.get("version")
        return Check("health", "ok", f"200 status ok{f' (v{version})' if version else ''}")
    return Check(
        "health",
        "fail",
        f"/healthz answered {response.status_code} with status {status!r}",
        "The server is up but unhealthy (usually its database): see its log.",
    )


def check_download(doctor: Doctor) -> Check:
    name = "file download"
    if doctor.job_id is None:
        return Check(name, "fail", "not measured: no job was submitted", "")
    try:
        job = doctor.client.get(doctor.job_id)
    except GenwireError as error:
        return Check(name, "fail", f"GET job: {error}", "")
    if not job.artifacts:
        return Check(name, "fail", f"the job ({job.status}) has no artifact to download", "")
    artifact: Artifact = job.artifacts[0]
    fix = "Let the proxy pass /api/files/* with its Range and Content-Range headers intact."
    try:
        # download() checks the size and sha256 itself (DownloadFailed otherwise).
        with tempfile.TemporaryDirectory(prefix="genwire-doctor-") as folder:
            path = doctor.client.download(artifact, folder)
            with path.open("rb") as file:
                want = file.read(RANGE_BYTES)
    except GenwireError as error:
        return Check(name, "fail", f"downloading {artifact.url}: {error}", fix)
    try:
        ranged = doctor.http.get(
            doctor.client.absolute(artifact.url),
            headers={"Range": f"bytes=0-{RANGE_BYTES - 1}"},
        )
    except httpx.HTTPError as error:
        return Check(name, "fail", f"Range request: {type(error).__name__}: {error}", fix)
    detail = f"{artifact.size_bytes} bytes, sha256 matches"
    if ranged.status_code != 206 or ranged.content != want:
        return Check(
            name,
            "warn",
            f"{detail}; but a Range request answered {ranged.status_code} with "
            f"{len(ranged.content)} bytes (206 and {len(want)} expected): "
            "video seeking and resumed downloads will not work",
            fix,
        )
    return Check(name, "ok", f"{detail}; Range answers 206")


def check_providers(doctor: Doctor) -> Check:
    """Each configured provider's key, tried by the server with one cheap call."""
    try:
        answer = doctor.http.get("/api/providers", params={"check": "1"}, timeout=60)
        items = answer.json()["items"] if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        items = None
    if not isinstance(items, list):
        return Check("providers", "warn", "the server does not list its providers (older genwire?)")
    checks = {item["name"]: item.get("check", {}) for item in items if item.get("configured")}
    if not checks:
        return Check("providers", "ok", "none configured (the demo pipelines need none)")
    said = "; ".join(
        f"{name}: {'works' if check.get('ok') else 'FAILS'} ({check.get('detail', 'not checked')})"
        for name, check in checks.items()
    )
    failing = [name for name, check in checks.items() if not check.get("ok")]
    if failing:
        return Check(
            "providers",
            "fail",
            said,
            f"Check the key of {', '.join(failing)} on the server (REPLICATE_API_TOKEN, "
            "FAL_KEY, RUNWARE_API_KEY) and that the server reaches the provider.",
        )
    return Check("providers", "ok", said)
