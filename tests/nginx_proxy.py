"""deploy/nginx.conf run for real: rendered in front of a live genwire (its upstream
pointed at the server, its ports free ones, its certificate a self-signed one made
here), in an nginx child process whose every path lies in one temporary folder."""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.redis_servers import free_port
from tests.waiting import wait_until

NGINX = Path("/usr/sbin/nginx")
SITE = Path(__file__).resolve().parent.parent / "deploy" / "nginx.conf"

#: The main configuration around the site, as /etc/nginx/nginx.conf would hold it;
#: its http block compresses event streams and ignores `X-Accel-Buffering`, so what
#: keeps streams unbuffered and uncompressed is the site's own settings.
MAIN_CONF = """\
daemon off;
{user}
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log notice;
events {{
    worker_connections 256;
}}
http {{
    client_body_temp_path {folder}/client_body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    access_log {folder}/access.log;
    gzip on;
    gzip_min_length 1;
    gzip_types text/event-stream application/json application/octet-stream;
    proxy_ignore_headers X-Accel-Buffering;
    include {folder}/genwire.conf;
}}
"""


def render_site(
    text: str,
    *,
    upstream: str,
    http_port: int,
    https_port: int,
    certificate: Path,
    key: Path,
    logs: Path,
) -> str:
    """The site with its example addresses, ports, certificate and log folder
    replaced; each must be found exactly where the deployed file has it."""
    replacements = [
        (r"server 10\.0\.0\.1[12]:8000 ", f"server {upstream} ", 2),
        (r"listen 80;", f"listen 127.0.0.1:{http_port};", 1),
        (r"listen \[::\]:80;\n", "", 1),
        (r"listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;", 1),
        (r"listen \[::\]:443 ssl http2;\n", "", 1),
        (r"ssl_certificate \S+;", f"ssl_certificate {certificate};", 1),
        (r"ssl_certificate_key \S+;", f"ssl_certificate_key {key};", 1),
        (r"/var/log/nginx/", f"{logs}/", 1),
    ]
    for pattern, replacement, count in replacements:
        text, found = re.subn(pattern, replacement, text)
        assert found == count, f"deploy/nginx.conf: {pattern!r} found {found} times, not {count}"
    return text


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own authority, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "genwire test proxy")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    certificate_path = folder / "proxy.crt"
    key_path = folder / "proxy.key"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certificate_path, key_path


class NginxProxy:
    """nginx serving deploy/nginx.conf in front of `upstream` (host:port), as a
    child process in the foreground."""

    def __init__(self, folder: Path, upstream: str) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.certificate, key = self_signed_certificate(folder)
        self.http_port = free_port()
        self.https_port = free_port()
        self.url = f"https://127.0.0.1:{self.https_port}"
        self.plain_url = f"http://127.0.0.1:{self.http_port}"
        site = render_site(
            SITE.read_text(),
            upstream=upstream,
            http_port=self.http_port,
            https_port=self.https_port,
            certificate=self.certificate,
            key=key,
            logs=folder,
        )
        (folder / "genwire.conf").write_text(site)
        # As root, nginx's workers would otherwise run as nobody, who cannot write
        # to a temporary folder that only its owner may enter.
        user = "user root;" if os.geteuid() == 0 else ""
        self.config = folder / "nginx.conf"
        self.config.write_text(MAIN_CONF.format(folder=folder, user=user))
        self.process: subprocess.Popen[bytes] | None = None

    def command(self, *extra: str) -> list[str]:
        return [str(NGINX), "-p", str(self.folder), "-c", str(self.config), "-e", "stderr", *extra]

    def start(self) -> None:
        checked = subprocess.run(self.command("-t"), capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, f"nginx -t refused the configuration:\n{checked.stderr}"
        with (self.folder / "nginx.out").open("wb") as output:
            self.process = subprocess.Popen(self.command(), stdout=output, stderr=subprocess.STDOUT)
        wait_until(self._answers, "nginx to answer", timeout=30)

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"nginx exited {self.process.returncode}:\n{self.log()}")
        try:
            httpx.get(f"{self.plain_url}/", timeout=2)
        except httpx.TransportError:
            return False
        return True

    def log(self) -> str:
        return "".join(
            path.read_text(errors="replace")
            for path in (self.folder / "nginx.out", self.folder / "error.log")
            if path.exists()
        )

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def client(self) -> httpx.AsyncClient:
        """A client of genwire through nginx, over TLS."""
        trusted = ssl.create_default_context(cafile=str(self.certificate))
        return httpx.AsyncClient(base_url=self.url, timeout=30, verify=trusted)
