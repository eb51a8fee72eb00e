"""The README's Python client example runs as written against a real server."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ThreadedServer

README = Path(__file__).parent.parent / "README.md"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def client_example() -> str:
    """The README's python block that uses `genwire.Client`."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    (example,) = [block for block in blocks if "from genwire import Client" in block]
    return example


def test_the_readme_client_example_runs_and_downloads_the_image(
    live_server: Callable[..., ThreadedServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = live_server()
    monkeypatch.setenv("GENWIRE_URL", server.url)
    monkeypatch.delenv("GENWIRE_API_KEY", raising=False)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    monkeypatch.chdir(downloads)

    exec(compile(client_example(), str(README), "exec"), {})

    printed = capsys.readouterr().out
    assert "job-completed" in printed
    assert "succeeded" in printed
    assert (downloads / "image.png").read_bytes().startswith(PNG_SIGNATURE)
