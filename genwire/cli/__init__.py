"""The `genwire` command (SPEC §1): `serve` and `worker` (`server.py`), the job
commands (`jobs.py`), `doctor` (`doctor.py`), `keys hash` (`keys.py`); input parsing
in `inputs.py`, the terminals every command shares in `terminal.py` and its lines for
a failed call in `failures.py`, the short ids of `jobs` in `short_ids.py`, times as
people say them in `times.py`, a job's attempts (a start over, an ending) in
`attempts.py`."""

from genwire.cli import doctor, jobs, keys, server
from genwire.cli.inputs import coerce_to_schema, parse_input
from genwire.cli.main import main

__all__ = ["coerce_to_schema", "doctor", "jobs", "keys", "main", "parse_input", "server"]
