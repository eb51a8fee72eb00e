"""API keys (SPEC §8) from a keys file of hashed keys, beside GENWIRE_API_KEYS: a
key's tenant, the file read again when it changes, and its errors."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from genwire.apikeys import ApiKeys, KeysFileError, keys_file_line, parse_keys_file
from genwire.cli import main
from tests.conftest import ThreadedServer
from tests.waiting import wait_until

ALICE_KEY = "gw_alice_0123456789abcdef0123456789abcdef"
ALICE_SPARE = "gw_alice_spare_aaaaaaaaaaaaaaaaaaaaaaaaaaaa"
BOB_KEY = "gw_bob_0123456789abcdef0123456789abcdef"
SYNTHETIC = {"pipeline": "demo.synthetic", "input": {"steps": 1, "step_ms": 1}}


def write_keys(path: Path, *lines: str) -> Path:
    """The file whole, renamed into place (as docs/DEPLOY.md tells operators)."""
    draft = path.with_suffix(".new")
    draft.write_text("".join(f"{line}\n" for line in lines))
    os.replace(draft, path)
    return path


def client(server: ThreadedServer, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.Client(base_url=server.url, timeout=30, headers=headers)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_in_the_file_works_as_its_tenant_beside_the_environments_keys(
    live_server: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    keys_file = write_keys(
        tmp_path / "keys",
        "# alice's CI",
        "",
        f"{keys_file_line(ALICE_KEY, 'alice')}   # since May",
    )
    server = live_server(api_keys={BOB_KEY: "bob"}, keys_file=keys_file)
    with client(server, ALICE_KEY) as alice, client(server, BOB_KEY) as bob:
        created = alice.post("/api/jobs", json=SYNTHETIC)
        assert created.status_code == 201, created.text
        job_path = f"/api/jobs/{created.json()['id']}"

        assert alice.get(job_path).status_code == 200
        assert [job["id"] for job in alice.get("/api/jobs").json()["items"]] == [
            created.json()["id"]
        ]
        # The environment's key still works, as another tenant: alice's job is not bob's.
        assert bob.get("/api/jobs").json()["items"] == []
        assert bob.get(job_path).status_code == 404

    for wrong in (ALICE_KEY[:-1], keys_file_line(ALICE_KEY, "alice").split()[0], None):
        with client(server, wrong) as stranger:
            assert stranger.get("/api/jobs").status_code == 401, wrong


def test_a_key_removed_from_the_file_stops_working_once_it_is_read_again(
    live_server: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    keys_file = write_keys(
        tmp_path / "keys",
        keys_file_line(ALICE_KEY, "alice"),
        keys_file_line(ALICE_SPARE, "alice"),
    )
    server = live_server(keys_file=keys_file)
    with client(server, ALICE_KEY) as revoked, client(server, ALICE_SPARE) as kept:
        assert revoked.get("/api/jobs").status_code == 200

        write_keys(keys_file, keys_file_line(ALICE_SPARE, "alice"))

        wait_until(
            lambda: revoked.get("/api/jobs").status_code == 401,
            "the removed key to be refused",
            timeout=30,
        )
        assert kept.get("/api/jobs").status_code == 200


def test_the_file_is_looked_at_once_a_second_at_most(tmp_path: Path) -> None:
    clock = Clock()
    keys_file = write_keys(tmp_path / "keys", keys_file_line(ALICE_KEY, "alice"))
    keys = ApiKeys({}, keys_file, clock=clock)

    write_keys(keys_file, keys_file_line(BOB_KEY, "bob"))
    clock.now += 0.5
    assert keys.tenant_of(ALICE_KEY) == "alice"
    clock.now += 0.5
    assert keys.tenant_of(ALICE_KEY) is None
    assert keys.tenant_of(BOB_KEY) == "bob"


def test_a_file_broken_later_is_logged_once_and_the_keys_read_before_stay(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    keys_file = write_keys(tmp_path / "keys", keys_file_line(ALICE_KEY, "alice"))
    keys = ApiKeys({}, keys_file, clock=clock)

    write_keys(keys_file, keys_file_line(BOB_KEY, "bob"), f"{BOB_KEY} bob")
    with caplog.at_level(logging.ERROR, logger="genwire.apikeys"):
        for _ in range(3):
            clock.now += 1
            assert keys.tenant_of(ALICE_KEY) == "alice"
            assert keys.tenant_of(BOB_KEY) is None
    [record] = caplog.records
    assert "line 2" in record.getMessage()
    assert BOB_KEY not in record.getMessage()  # a raw key pasted there stays out of the log

    keys_file.unlink()
    clock.now += 1
    assert keys.tenant_of(ALICE_KEY) == "alice"

    write_keys(keys_file, keys_file_line(BOB_KEY, "bob"))
    clock.now += 1
    assert keys.tenant_of(BOB_KEY) == "bob"
    assert keys.tenant_of(ALICE_KEY) is None


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("sha256:abc alice\n", "line 1: a SHA-256 is 64 hex digits"),
        (f"# keys\n\n{'0' * 64} alice\n", "line 3: not `sha256:"),
        (f"sha256:{'0' * 64}\n", "line 1: not `sha256:"),
        (f"sha256:{'0' * 64} alice extra\n", "line 1: not `sha256:"),
        (f"sha256:{'0' * 64} {'t' * 101}\n", "line 1: a tenant is"),
        (f"sha256:{'0' * 64} alice\nsha256:{'0' * 64} bob\n", "line 2: the key of line 1 again"),
    ],
)
def test_a_malformed_line_is_named(text: str, complaint: str) -> None:
    with pytest.raises(KeysFileError, match=re.escape(complaint)):
        parse_keys_file(text, "keys")


def test_keys_are_held_and_looked_up_as_digests_so_no_raw_key_is_ever_compared(
    tmp_path: Path,
) -> None:
    """A dict of raw keys compares the caller's key with a stored one, byte by byte
    until they differ: the time that takes tells how much of a key a guess got."""
    keys = ApiKeys({BOB_KEY: "bob"}, write_keys(tmp_path / "keys"))

    assert keys.tenant_of(BOB_KEY) == "bob"
    assert BOB_KEY not in repr(vars(keys))
    assert BOB_KEY.encode() not in repr(vars(keys)).encode()


def serve(*args: str, env: dict[str, str] | None = None) -> Result:
    """`genwire serve` in this process: these refusals come before it listens."""
    unset: dict[str, str | None] = {"GENWIRE_API_KEYS": None, "GENWIRE_KEYS_FILE": None}
    return CliRunner().invoke(main, ["serve", "--port", "0", *args], env={**unset, **(env or {})})


def test_serve_refuses_a_malformed_keys_file_with_a_usage_error(tmp_path: Path) -> None:
    keys_file = write_keys(tmp_path / "keys", keys_file_line(ALICE_KEY, "alice"), "alice bob")

    result = serve("--data-dir", str(tmp_path / "data"), "--keys-file", str(keys_file))

    assert result.exit_code == 2, result.output
    assert f"{keys_file}, line 2: not `sha256:" in result.output
    assert not (tmp_path / "data").exists()


def test_serve_refuses_a_missing_keys_file_named_in_the_environment(tmp_path: Path) -> None:
    result = serve(
        "--data-dir", str(tmp_path / "data"), env={"GENWIRE_KEYS_FILE": str(tmp_path / "none")}
    )

    assert result.exit_code == 2, result.output
    assert "cannot read the keys file" in result.output


def test_serve_refuses_a_key_of_both_sources_with_two_tenants(tmp_path: Path) -> None:
    keys_file = write_keys(tmp_path / "keys", keys_file_line(ALICE_KEY, "alice"))

    result = serve(
        "--data-dir",
        str(tmp_path / "data"),
        "--keys-file",
        str(keys_file),
        env={"GENWIRE_API_KEYS": f"{ALICE_KEY}:mallory"},
    )

    assert result.exit_code == 2, result.output
    assert "line 1: a key of GENWIRE_API_KEYS, with another tenant" in result.output
    assert ALICE_KEY not in result.output


def test_keys_hash_makes_the_line_of_a_key_read_on_stdin(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["keys", "hash", "alice"], input=f"{ALICE_KEY}\n")

    assert result.exit_code == 0, result.output
    assert ALICE_KEY not in result.output
    keys = ApiKeys({}, write_keys(tmp_path / "keys", result.output.strip()))
    assert keys.tenant_of(ALICE_KEY) == "alice"

    refused = CliRunner().invoke(main, ["keys", "hash", "two words"], input=f"{ALICE_KEY}\n")
    assert refused.exit_code == 2
    assert CliRunner().invoke(main, ["keys", "hash", "alice"], input="").exit_code == 2


def test_no_key_is_never_a_key(tmp_path: Path) -> None:
    """Bug: `GENWIRE_API_KEYS=:alice`, or a keys-file line of the empty key's digest,
    let `Authorization: Bearer` with nothing after it in as alice."""
    listed = tmp_path / "keys"
    listed.write_text(f"sha256:{hashlib.sha256(b'').hexdigest()}  alice\n")
    keys = ApiKeys({"": "alice"}, listed)

    assert keys.tenant_of("") is None
    with pytest.raises(ValueError, match="empty"):
        keys_file_line("", "alice")
