"""No API key, stream token, webhook or provider secret, or `Authorization` value
reaches a log line (SPEC §8, issue 17): uvicorn's lines and genwire's, at every
level, tracebacks included (`genwire.api.log_redaction`)."""

from __future__ import annotations

import base64
import copy
import io
import logging
import secrets
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from uvicorn.config import LOGGING_CONFIG

from genwire.api.log_redaction import (
    MASK,
    RedactSecrets,
    SecretMask,
    redact_logs,
    secrets_from_env,
)
from tests.conftest import ServerProcess
from tests.waiting import wait_until

API_KEY = "gw_live_" + "a1" * 16
PROVIDER_KEY = "r8_" + "b2" * 18


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _record(msg: object, args: Any = (), **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("genwire.test", logging.WARNING, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def _masked(record: logging.LogRecord, known: tuple[str, ...] = (API_KEY,)) -> str:
    """The line a plain handler writes for `record` once the filter has seen it."""
    assert RedactSecrets(SecretMask(known)).filter(record)
    return logging.Formatter("%(message)s").format(record)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "GET /api/jobs/j/events?token=17.abc-_x&after=3",
            "GET /api/jobs/j/events?token=[redacted]&after=3",
        ),
        (
            "/api/providers/runware/webhook?call=c1&secret=s3cr3t",
            "/api/providers/runware/webhook?call=c1&secret=[redacted]",
        ),
        (
            "https://hook.example/in?access_token=abc&x=1",
            "https://hook.example/in?access_token=[redacted]&x=1",
        ),
        ("Authorization: Bearer abc.def\nnext", "Authorization: [redacted]\nnext"),
        (
            "{'authorization': 'Key fal:123', 'accept': '*/*'}",
            "{'authorization': '[redacted]', 'accept': '*/*'}",
        ),
        (
            "[(b'authorization', b'Bearer x'), (b'host', b'h')]",
            "[(b'authorization', b'[redacted]'), (b'host', b'h')]",
        ),
        ('{"apiKey": "rw-123", "taskType": "x"}', '{"apiKey": "[redacted]", "taskType": "x"}'),
        (
            r'body: "{\"authorization\": \"Key fal:1\", \"a\": 1}"',
            r'body: "{\"authorization\": \"[redacted]\", \"a\": 1}"',
        ),
        ("sent bearer eyJhbGciOi.x.y to it", "sent bearer [redacted] to it"),
        (f"Basic {_basic('ann', 'pw')} was refused", "Basic [redacted] was refused"),
        ("signed with whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw=", "signed with whsec_[redacted]"),
        (
            "POST http://ann:pa55@hook.example:8080/in",
            "POST http://ann:[redacted]@hook.example:8080/in",
        ),
        (f"key {API_KEY} refused", "key [redacted] refused"),
        # Left as they are: no secret in them.
        ("the basic settings, authorization failed", "the basic settings, authorization failed"),
        ("http://127.0.0.1:8000/a@b?after=3", "http://127.0.0.1:8000/a@b?after=3"),
        (f"another case: {API_KEY.upper()}", f"another case: {API_KEY.upper()}"),
    ],
)
def test_the_mask_replaces_each_kind_of_secret_and_nothing_else(text: str, expected: str) -> None:
    assert SecretMask([API_KEY])(text) == expected


def test_a_known_secret_too_short_to_be_told_from_text_is_masked_by_its_shape_only() -> None:
    mask = SecretMask(["k1", "x" * 7])
    assert mask("job_k1xxxxxxx, Bearer k1") == "job_k1xxxxxxx, Bearer [redacted]"


def test_arguments_of_every_type_are_masked_and_numbers_still_format() -> None:
    class Upstream:
        def __repr__(self) -> str:
            return f"Upstream(key={API_KEY!r})"

    headers = {"Authorization": "Bearer abc", "Accept": "*/*"}
    record = _record(
        "%s %d %.1f %s %s %r %r %s %s %r",
        (
            "GET /x?token=t0k",
            7,
            2.5,
            None,
            ValueError(f"refused {API_KEY}"),
            headers,
            b"Authorization: Basic " + _basic("u", "p").encode(),
            ["https://u:pw@h/?secret=s", 3],
            True,
            Upstream(),
        ),
    )
    assert _masked(record) == (
        "GET /x?token=[redacted] 7 2.5 None refused [redacted] "
        "{'Authorization': '[redacted]', 'Accept': '*/*'} b'Authorization: [redacted]' "
        "['https://u:[redacted]@h/?secret=[redacted]', 3] True Upstream(key='[redacted]')"
    )
    assert headers["Authorization"] == "Bearer abc", "the caller's object is left alone"


def test_mapping_arguments_and_a_message_that_is_no_text_are_masked() -> None:
    assert _masked(_record("%(url)s: %(status)d", {"url": "/p?token=abc", "status": 401})) == (
        "/p?token=[redacted]: 401"
    )
    assert _masked(_record(RuntimeError(f"Authorization: Bearer {API_KEY}"))) == (
        "Authorization: [redacted]"
    )


@pytest.mark.parametrize(
    ("template", "args", "expected"),
    [
        ("stream token=%s for %s", ("17.abc", "job_1"), "stream token=[redacted] for job_1"),
        ("Authorization: %s %s", ("Bearer", "abc"), "Authorization: [redacted]"),
        ("bearer %s", ("abc",), "bearer [redacted]"),
        (
            "%(who)s sent Bearer %(what)s",
            {"who": "ann", "what": "abc"},
            "ann sent Bearer [redacted]",
        ),
    ],
)
def test_a_secret_split_between_the_template_and_its_arguments_is_masked(
    template: str, args: Any, expected: str
) -> None:
    assert _masked(_record(template, args)) == expected


def test_a_traceback_is_masked_chained_causes_included() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets(SecretMask([API_KEY])))
    logger = logging.getLogger("genwire.test.tracebacks")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            try:
                raise ConnectionError(f"https://api.example/v1?token=t0k refused {API_KEY}")
            except ConnectionError as error:
                raise RuntimeError(f"Authorization: Basic {_basic('ann', 'pw')}") from error
        except RuntimeError:
            logger.exception("calling %s failed", "https://ann:pw@api.example/")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    written = stream.getvalue()
    assert "Traceback (most recent call last)" in written
    assert "ConnectionError: https://api.example/v1?token=[redacted] refused [redacted]" in written
    assert "RuntimeError: Authorization: [redacted]" in written
    assert "calling https://ann:[redacted]@api.example/ failed" in written
    for secret in (API_KEY, "t0k", _basic("ann", "pw"), ":pw@"):
        assert secret not in written


def test_a_stack_and_a_traceback_already_formatted_are_masked() -> None:
    record = _record("x", stack_info="  File 'a.py'\n    get('/p?secret=s3')", exc_text=API_KEY)
    assert RedactSecrets(SecretMask([API_KEY])).filter(record)
    assert record.stack_info == "  File 'a.py'\n    get('/p?secret=[redacted]')"
    assert record.exc_text == MASK


def test_uvicorns_lines_are_masked_after_its_config_replaces_its_handlers() -> None:
    """uvicorn's `Config()` runs `dictConfig` with its own handlers after `genwire
    serve` has set up logging; its loggers never propagate to the root's handlers."""
    redact_logs()
    config = copy.deepcopy(LOGGING_CONFIG)
    written = io.StringIO()
    for handler in config["handlers"].values():
        handler["stream"] = written
    uvicorn.Config(lambda: None, log_config=config, log_level="info")

    logging.getLogger("uvicorn.error").error(
        "Exception in ASGI application: Authorization: Bearer abc"
    )
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5000",
        "GET",
        "/api/jobs/j/events?token=t0k",
        "1.1",
        200,
    )
    lines = written.getvalue().splitlines()
    assert lines == [
        "ERROR:    Exception in ASGI application: Authorization: [redacted]",
        'INFO:     127.0.0.1:5000 - "GET /api/jobs/j/events?token=[redacted] HTTP/1.1" 200 OK',
    ]


def test_the_environment_names_the_keys_masked_by_value() -> None:
    environ = {
        "GENWIRE_API_KEYS": f"{API_KEY}:alice, key-of-bob:bob",
        "GENWIRE_WEBHOOK_SECRET": "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=",
        "REPLICATE_API_TOKEN": PROVIDER_KEY,
        "GENWIRE_REPLICATE_WEBHOOK_SECRET": "whsec_cmVwbGljYXRlLXNlY3JldA==",
        "FAL_KEY": "fal-id:fal-secret",
        "RUNWARE_API_KEY": "runware-key",
        "GENWIRE_REPLICATE_API_URL": "https://replicate.example/v1",
    }
    assert sorted(secrets_from_env(environ)) == sorted(
        [
            API_KEY,
            "key-of-bob",
            "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=",
            PROVIDER_KEY,
            "whsec_cmVwbGljYXRlLXNlY3JldA==",
            "fal-id:fal-secret",
            "runware-key",
        ]
    )
    # A malformed provider setting is the CLI's to refuse, not logging's.
    malformed = {**environ, "GENWIRE_PROVIDER_POLL_S": "not seconds"}
    assert API_KEY in secrets_from_env(malformed)


LEAKY_PIPELINES = '''
import logging

from pydantic import BaseModel

from genwire.pipelines import PipelineContext, pipeline


class Leak(BaseModel):
    url: str
    header: str
    said: str


@pipeline("leaky.raises", input=Leak, phases={"work": (0, 100)})
async def raises(ctx: PipelineContext, params: Leak) -> dict[str, object]:
    """What a careless pipeline does: logs a request's headers, raises with them."""
    await ctx.phase("work")
    headers = {"Authorization": params.header, "Accept": "application/json"}
    logging.getLogger("leaky").warning("upstream %s refused: %r", params.url, headers)
    raise RuntimeError(f"{params.url}: {params.said} (Authorization: {params.header})")
'''


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_no_key_token_secret_or_authorization_value_reaches_the_server_log(
    serve_process: Callable[..., ServerProcess],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bug: only uvicorn's access log was masked, and only `token=` and `secret=` in
    it: a webhook target's password and its receiver's token, a key a client pasted
    into a path, and a pipeline's warning and traceback quoting its request's
    `Authorization` and a provider key reached the log whole."""

    def secret(prefix: str) -> str:
        return prefix + secrets.token_urlsafe(24)

    alice, bob = secret("gw_alice_"), secret("gw_bob_")
    webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    provider_keys = {
        "REPLICATE_API_TOKEN": secret("r8_"),
        "GENWIRE_REPLICATE_WEBHOOK_SECRET": "whsec_"
        + base64.b64encode(secrets.token_bytes(24)).decode(),
        "FAL_KEY": f"{secrets.token_hex(8)}:{secrets.token_hex(16)}",
        "RUNWARE_API_KEY": secret(""),
    }
    address = f"127.0.0.1:{_closed_port()}"
    nowhere = f"http://{address}"
    monkeypatch.setenv("GENWIRE_API_KEYS", f"{alice}:alice,{bob}:bob")
    monkeypatch.setenv("GENWIRE_WEBHOOK_SECRET", webhook_secret)
    for name, value in provider_keys.items():
        monkeypatch.setenv(name, value)
    for name in (
        "GENWIRE_REPLICATE_API_URL",
        "GENWIRE_FAL_QUEUE_URL",
        "GENWIRE_FAL_JWKS_URL",
        "GENWIRE_RUNWARE_API_URL",
    ):
        monkeypatch.setenv(name, nowhere)  # nothing leaves this machine
    monkeypatch.chdir(tmp_path)
    (tmp_path / "leaky_pipelines.py").write_text(LEAKY_PIPELINES)
    # Secrets of others that pass through genwire: a webhook receiver's, a browser's.
    hook_password, receiver_token = secret("hookpw_"), secret("rcv_")
    wrong_key, call_secret = secret("gw_wrong_"), secret("call_")
    basic = _basic("alice", secret("pw_"))
    upstream, upstream_password = "https://upstream.example/v1/run", secret("up_")

    server = serve_process("--allow-private-webhooks", "--pipelines", "leaky_pipelines")
    wait = {"Prefer": "wait=20"}
    with (
        httpx.Client(
            base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {alice}"}
        ) as client,
        httpx.Client(base_url=server.url, timeout=30) as browser,
    ):
        hook = f"http://hookuser:{hook_password}@{address}/in?token={receiver_token}"
        job = client.post(
            "/api/jobs",
            json={
                "pipeline": "demo.synthetic",
                "input": {"steps": 2, "step_ms": 1},
                "webhook": {"url": hook},
            },
            headers=wait,
        ).json()
        assert job["status"] == "succeeded", job
        stream_token = job["urls"]["events"].partition("?token=")[2]
        assert stream_token
        stream = browser.get(job["urls"]["events"])
        assert "event: job-completed" in stream.text
        assert browser.get(job["urls"]["poll"] + "&wait=1").json()["done"] is True

        failed = client.post(
            "/api/jobs",
            json={
                "pipeline": "leaky.raises",
                "input": {
                    "url": f"{upstream}?api_key={provider_keys['RUNWARE_API_KEY']}",
                    "header": f"Basic {_basic('svc', upstream_password)}",
                    "said": f"invalid token {provider_keys['REPLICATE_API_TOKEN']}",
                },
            },
            headers=wait,
        ).json()
        assert failed["status"] == "failed", failed

        refused = [
            browser.get("/api/jobs", headers={"Authorization": f"Bearer {wrong_key}"}),
            browser.get("/api/jobs", headers={"Authorization": f"Basic {basic}"}),
            browser.get(f"/api/jobs/{job['id']}", params={"token": stream_token}),
            browser.post(
                "/api/providers/runware/webhook",
                params={"call": "pcall_unknown", "secret": call_secret},
                json={},
            ),
        ]
        assert [answer.status_code for answer in refused] == [401, 401, 401, 401]
        # A client that pastes a key where a path or a query goes.
        for mistake in (f"/api/jobs/{bob}", f"/api/jobs/{provider_keys['FAL_KEY']}"):
            assert client.get(mistake).status_code == 404

    # Awaited by what no mask touches, so that a leak fails at once, naming itself.
    wait_until(
        lambda: "genwire.webhooks: webhook " in server.log(), "the webhook's failure", timeout=30
    )
    wait_until(lambda: "RuntimeError" in server.log(), "the pipeline's traceback", timeout=30)
    log = server.log()

    expected = [
        f'"GET /api/jobs/{job["id"]}/events?token=[redacted] HTTP/1.1" 200',
        f'"GET /api/jobs/{job["id"]}/poll?token=[redacted]&wait=1 HTTP/1.1" 200',
        f'"GET /api/jobs/{job["id"]}?token=[redacted] HTTP/1.1" 401',
        '"POST /api/providers/runware/webhook?call=pcall_unknown&secret=[redacted] HTTP/1.1" 401',
        '"GET /api/jobs HTTP/1.1" 401',
        '"GET /api/jobs/[redacted] HTTP/1.1" 404',
        f"to http://hookuser:[redacted]@{address}/in?token=[redacted]",
        "upstream https://upstream.example/v1/run?api_key=[redacted] refused: "
        "{'Authorization': '[redacted]', 'Accept': 'application/json'}",
        "Traceback (most recent call last)",
        "RuntimeError: https://upstream.example/v1/run?api_key=[redacted]",
        "invalid token [redacted] (Authorization: [redacted]",
    ]
    leaks = [
        alice,
        bob,
        webhook_secret,
        *provider_keys.values(),
        wrong_key,
        basic,
        stream_token,
        stream_token.partition(".")[2],
        hook_password,
        receiver_token,
        call_secret,
        upstream_password,
        _basic("svc", upstream_password),
    ]
    missing = [line for line in expected if line not in log]
    found = [leak for leak in leaks if leak in log]
    assert not found, f"written to the log: {found}\n{log}"
    assert not missing, f"not in the log as expected: {missing}\n{log}"
