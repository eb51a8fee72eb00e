"""The `genwire` command (SPEC §1): `serve` and `worker` (`server.py`), the job
commands (`jobs.py`), `doctor` (`doctor.py`), `keys hash` (`keys.py`); input parsing
in `inputs.py`, the terminals and failure lines every command shares in
`terminal.py`."""

from genwire.cli import doctor, jobs, keys, server
from genwire.cli.inputs import coerce_to_schema, parse_input
from genwire.cli.main import main

__all__ = ["coerce_to_schema", "doctor", "jobs", "keys", "main", "parse_input", "server"]
