"""The API server's TLS certificate, in the webhook's layout: a directory holding ``tls.crt`` and
``tls.key`` (a Kubernetes TLS Secret mounted as files, made by cert-manager or by the Helm chart).

When the directory has no certificate, one is made there, self-signed (``openssl``, as the local
cluster makes the webhook's; RSA 2048, 365 days) for the listen address and ``localhost``, so that
clients can trust it (``aws --ca-bundle <dir>/tls.crt``, ``AWS_CA_BUNDLE``); without a directory, in
a temporary one. The files are read again when they change (checked every ``RELOAD_SECONDS``), so
a renewed certificate is served without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

RELOAD_SECONDS = 30.0
DAYS = "365"


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is a loopback address."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def _san(hosts: list[str]) -> str:
    entries = []
    for host in dict.fromkeys(h.strip("[]") for h in hosts if h):
        try:
            ipaddress.ip_address(host)
            entries.append(f"IP:{host}")
        except ValueError:
            entries.append(f"DNS:{host}")
    return ",".join(entries)


def self_signed(directory: Path, hosts: list[str]) -> None:
    """A self-signed serving certificate for ``hosts`` in ``directory`` (tls.crt, tls.key)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(directory / "tls.crt"), "-days", DAYS, "-subj", "/CN=kubatch-aws-api",
         "-addext", f"subjectAltName={_san(hosts)}", "-addext", "extendedKeyUsage=serverAuth"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    key.chmod(0o600)


def certificate_dir(cert_dir: str | None, host: str) -> Path:
    """The directory to serve from: ``cert_dir`` (a certificate made there if it has none), else a
    new temporary one with a self-signed certificate."""
    directory = Path(cert_dir) if cert_dir else Path(tempfile.mkdtemp(prefix="kubatch-api-tls-"))
    if not ((directory / "tls.crt").exists() and (directory / "tls.key").exists()):
        hosts = [host, "localhost", "127.0.0.1", "::1"] if host not in ("0.0.0.0", "::", "") else [
            socket.gethostname(), "localhost", "127.0.0.1", "::1"
        ]
        self_signed(directory, hosts)
        log.info("self-signed certificate made: %s (give it to clients as their CA bundle)", directory / "tls.crt")
    return directory


def _stamp(directory: Path) -> tuple[float, float]:
    return (directory / "tls.crt").stat().st_mtime, (directory / "tls.key").stat().st_mtime


def server_context(directory: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(directory / "tls.crt", directory / "tls.key")
    return context


async def reload_forever(context: ssl.SSLContext, directory: Path, interval: float = RELOAD_SECONDS) -> None:
    """Load the certificate again into ``context`` (new handshakes use it) whenever its files change."""
    seen = _stamp(directory)
    while True:
        await asyncio.sleep(interval)
        with contextlib.suppress(OSError):
            stamp = _stamp(directory)
            if stamp != seen:
                try:
                    context.load_cert_chain(directory / "tls.crt", directory / "tls.key")
                    seen = stamp
                    log.info("TLS certificate reloaded from %s", directory)
                except (ssl.SSLError, OSError) as e:
                    log.warning("TLS certificate in %s not reloaded: %s", directory, e)

