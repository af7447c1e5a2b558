"""``serve --simulate`` with the simulator on 127.0.0.1, the address the API and the
database listen on too: the service's fetchers reach the simulator, and every other port of
that address (the API's own, PostgreSQL's, any listening service, a closed one) is refused
before any connection, in the same words, so a client cannot map what listens where."""

from __future__ import annotations

import asyncio
import socket

import pytest
from sqlalchemy.engine import make_url

from conveyor.net import SafeFetcher, UrlRefused
from conveyor.net.errors import PRIVATE_URL_HINT
from conveyor.sim import SimConfig, start_simulator
from tests.integration.conftest import Serve
from tests.support import databases


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def _listening_elsewhere() -> asyncio.Server:
    async def answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


async def test_simulate_mode_opens_the_simulator_port_only(serve: Serve) -> None:
    simulator = await start_simulator(SimConfig(latency_min=0, latency_max=0), "127.0.0.1")
    other = await _listening_elsewhere()
    try:
        async with serve(
            simulate=True, simulator_url=simulator.base_url, allow_private_urls=False
        ) as client:
            runtime = client.app.state.runtime  # type: ignore[attr-defined]
            fetchers: list[SafeFetcher] = [
                runtime.fetcher,
                runtime.result_fetcher,
                runtime.webhook_fetcher,
            ]
            for fetcher in fetchers:
                answer = await fetcher.fetch(f"{simulator.base_url}/_sim")
                assert answer.status == 200

            ports = {
                "the API itself": client.base_url.port,
                "another listening service": other.sockets[0].getsockname()[1],
                "a closed port": _closed_port(),
            }
            postgres = make_url(databases.POSTGRES_URL)
            if postgres.host == "127.0.0.1":
                ports["PostgreSQL"] = postgres.port or 5432
            messages: dict[str, str] = {}
            for what, port in ports.items():
                for fetcher in fetchers:
                    with pytest.raises(UrlRefused) as caught:
                        await fetcher.fetch(f"http://127.0.0.1:{port}/")
                    messages[f"{what} via {id(fetcher)}"] = caught.value.message
            assert set(messages.values()) == {
                f"URL refused: the host is a loopback address 127.0.0.1 ({PRIVATE_URL_HINT})"
            }, messages
            # A webhook at the API's own port is refused when the job is submitted.
            refused = await client.post(
                "/v1/jobs",
                json={
                    "model": "openai/vision",
                    "items": [{"prompt": "x"}],
                    "webhook_url": f"http://127.0.0.1:{client.base_url.port}/v1/jobs",
                },
            )
            assert refused.status_code == 422, refused.text
            assert refused.json()["message"].startswith("webhook_url: URL refused"), refused.text
    finally:
        other.close()
        await other.wait_closed()
        await simulator.close()
