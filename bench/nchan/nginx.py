"""nginx with Debian's Nchan module: installed when missing, configured from
nginx.conf.template, started with one worker on a free port."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench._server import stop_process, surface_errors
from bench.nchan.servers import Running

NGINX_TEMPLATE = Path(__file__).resolve().parent / "nginx.conf.template"
NCHAN_MODULE = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")
NCHAN_PACKAGES = ("nginx-light", "libnginx-mod-nchan")


def ensure_nchan() -> None:
    """Installs nginx-light and Debian's Nchan module with apt-get when missing."""
    missing = [
        name
        for name in NCHAN_PACKAGES
        if subprocess.run(["dpkg", "-s", name], capture_output=True).returncode != 0
    ]
    if not missing:
        return
    print(f"installing {' '.join(missing)} with apt-get", file=sys.stderr)
    install = ("install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", *missing)
    # A fresh machine's package lists may be missing or stale: update once, then retry.
    if _apt_get(*install) and (_apt_get("update", "-q") or _apt_get(*install)):
        sys.exit(f"could not install {' '.join(missing)} with apt-get")


def _apt_get(*arguments: str) -> int:
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", *arguments]
    return subprocess.run(command, stdout=subprocess.DEVNULL, env=environment).returncode


@contextlib.contextmanager
def nchan_server(keepalive: int, connections: int) -> Iterator[Running]:
    """nginx with one Nchan worker on a free port, its files in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="nchan-bench-") as folder:
        prefix = Path(folder)
        port = _free_port()
        config = string.Template(NGINX_TEMPLATE.read_text()).substitute(
            module=NCHAN_MODULE,
            prefix=prefix,
            port=port,
            keepalive=keepalive,
            max_files=resource.getrlimit(resource.RLIMIT_NOFILE)[1],
            max_connections=connections + 1024,
        )
        (prefix / "nginx.conf").write_text(config)
        log = prefix / "error.log"
        master = subprocess.Popen(
            ["nginx", "-c", str(prefix / "nginx.conf"), "-p", str(prefix), "-e", str(log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            yield Running(port, _nginx_worker(master, port, log))
        finally:
            stop_process(master)
            surface_errors("nchan", log, r"\[(emerg|alert|crit|error)\]")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _nginx_worker(master: subprocess.Popen[bytes], port: int, log: Path) -> int:
    children = Path(f"/proc/{master.pid}/task/{master.pid}/children")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and master.poll() is None:
        workers = children.read_text().split()
        if workers and _accepts(port):
            return int(workers[0])
        time.sleep(0.05)
    raise RuntimeError(f"nginx did not start: {log.read_text() if log.exists() else ''}")


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
        return True
    return False
