"""`kubatch api serve`'s address and TLS: HOST:PORT parsing, plain HTTP refused off loopback, a
self-signed certificate made in the certificate directory (and kept there), served and verified by
boto3 with it as the CA bundle, and a renewed certificate picked up without a restart."""

from __future__ import annotations

import asyncio
import ssl
import threading
from pathlib import Path
from typing import Any

import boto3
import click
import pytest
from aiohttp import web
from botocore.config import Config
from click.testing import CliRunner

from kubatch.awsapi import tls
from kubatch.awsapi.protocol import Call
from kubatch.awsapi.server import ApiServer, Context, Principal, Request
from kubatch.cli.api import parse_listen
from kubatch.cli.main import cli


def test_listen_addresses() -> None:
    assert parse_listen("127.0.0.1:8443") == ("127.0.0.1", 8443)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    assert parse_listen(":8443") == ("0.0.0.0", 8443)
    for bad in ("8443", "host:port", "h:70000"):
        with pytest.raises(click.BadParameter):
            parse_listen(bad)
    assert tls.is_loopback("127.0.0.1") and tls.is_loopback("::1") and tls.is_loopback("localhost")
    assert not tls.is_loopback("0.0.0.0") and not tls.is_loopback("10.1.2.3") and not tls.is_loopback("[2001:db8::1]")


def test_insecure_http_is_loopback_only() -> None:
    for address in ("0.0.0.0:8080", "10.0.0.1:8080"):
        result = CliRunner().invoke(cli, ["api", "serve", "--listen", address, "--insecure-http"])
        assert result.exit_code == 2
        assert "loopback addresses only" in result.output


def serve_tls(app: web.Application, context: ssl.SSLContext) -> tuple[str, Any]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def start() -> None:
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
        state["runner"], state["port"] = runner, runner.addresses[0][1]
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    assert ready.wait(10)

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(state["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)

    return f"https://localhost:{state['port']}", stop


def test_self_signed_certificate_served_and_verified(tmp_path: Path) -> None:
    directory = tls.certificate_dir(str(tmp_path / "certs"), "127.0.0.1")
    crt = (directory / "tls.crt").read_bytes()
    assert oct((directory / "tls.key").stat().st_mode & 0o777) == "0o600"
    assert tls.certificate_dir(str(directory), "127.0.0.1") == directory
    assert (directory / "tls.crt").read_bytes() == crt  # kept, not made again

    async def accept(request: Request) -> Principal:
        return Principal("KBATTEST", "ns", 'user "t"', None)  # type: ignore[arg-type]

    async def list_jobs(ctx: Context, call: Call) -> dict[str, Any]:
        return {"jobSummaryList": []}

    server = ApiServer(None, accept, {"ListJobs": list_jobs})  # type: ignore[arg-type]
    url, stop = serve_tls(server.app(), tls.server_context(directory))
    try:
        def client(verify: Any) -> Any:
            return boto3.client(
                "batch", endpoint_url=url, region_name="us-east-1", aws_access_key_id="k",
                aws_secret_access_key="s", verify=verify, config=Config(retries={"total_max_attempts": 1}),
            )  # fmt: skip

        assert client(str(directory / "tls.crt")).list_jobs(jobQueue="q")["jobSummaryList"] == []
        with pytest.raises(Exception, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            client(True).list_jobs(jobQueue="q")
    finally:
        stop()


async def test_a_renewed_certificate_is_reloaded(tmp_path: Path) -> None:
    directory = tls.certificate_dir(str(tmp_path), "127.0.0.1")
    context = tls.server_context(directory)
    loads: list[Path] = []
    original = context.load_cert_chain

    def spy(certfile: Any, keyfile: Any = None, password: Any = None) -> None:
        loads.append(Path(certfile))
        original(certfile, keyfile)

    context.load_cert_chain = spy  # type: ignore[method-assign]
    task = asyncio.create_task(tls.reload_forever(context, directory, interval=0.05))
    await asyncio.sleep(0.2)
    assert loads == []
    (directory / "tls.crt").unlink()
    (directory / "tls.key").unlink()
    tls.self_signed(directory, ["localhost"])
    for _ in range(100):
        if loads:
            break
        await asyncio.sleep(0.05)
    task.cancel()
    assert loads == [directory / "tls.crt"]
