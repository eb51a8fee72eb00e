"""The README's two commands, the one that serves and the one that tests, can run
side by side in either order (issue 18): they install into different environments,
so the tests never reinstall genwire under a running `genwire serve`."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
TEST_SCRIPT = ROOT / "scripts" / "test"


def shell_block_after(heading: str) -> str:
    """The first ```sh block of the README section under `heading`."""
    section = README.read_text().split(f"## {heading}", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    assert match is not None, heading
    return match.group(1)


def venvs_made_by(command: str) -> set[str]:
    return set(re.findall(r"-m venv \"?([\w.$/{}-]+)\"?", command))


def test_the_serve_command_and_the_test_script_install_into_different_environments() -> None:
    """Regression: both used .venv, and the tests' editable install deleted the
    installed page under a running `genwire serve` (`/` 500, `/ui/*.js` 404)."""
    serve = shell_block_after("Start it")
    script = TEST_SCRIPT.read_text()
    assert venvs_made_by(serve) == {".venv"}
    assignment = re.search(r"^venv=(\S+)$", script, flags=re.MULTILINE)
    assert assignment is not None
    assert venvs_made_by(script) == {"$venv"}
    assert assignment.group(1) != ".venv"
    # Nothing else in the script reaches into the serve command's environment.
    assert ".venv/" not in script
    assert shell_block_after("Run the tests").strip() == "./scripts/test"


def test_the_test_environment_is_ignored_by_git_and_by_the_linters() -> None:
    ignored = (ROOT / ".gitignore").read_text().split()
    script = TEST_SCRIPT.read_text()
    venv = re.search(r"^venv=(\S+)$", script, flags=re.MULTILINE)
    assert venv is not None
    assert f"{venv.group(1)}/" in ignored
