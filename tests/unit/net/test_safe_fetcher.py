"""SafeFetcher against a real aiohttp server on 127.0.0.1 (see conftest.py).

The server is on loopback, so every test says how it gets there: ``allow_private`` (the
policy flag for local use), or an operator exception for a name that a ``StaticResolver``
maps to 127.0.0.1 — which also shows the connection goes where the resolver said, since
these names exist in no DNS.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
from dataclasses import replace
from ipaddress import ip_address, ip_network

import aiohttp
import pytest

from conveyor.content.sniff import IMAGE_MIMES
from conveyor.net import (
    FetchFailed,
    FetchTooLarge,
    NotAnImage,
    SafeFetcher,
    StaticResolver,
    SystemResolver,
    UnexpectedContentType,
    UrlPolicy,
    UrlRefused,
)
from conveyor.net.errors import PRIVATE_URL_HINT
from conveyor.net.policy import IPAddress
from tests.unit.net.local_server import FIVE_GB, LocalServer, local_server, png_bytes

LOCAL = UrlPolicy(allow_private=True)
# "public.test" plays a public image host; it is an operator exception so that it may live
# on loopback, while every other name and address keeps the default rules.
PUBLIC_HOST = UrlPolicy(allowed_hosts=frozenset({"public.test"}))


def only_endpoint(port: int) -> UrlPolicy:
    """127.0.0.1 on this one port (as simulate mode allows the simulator): failures keep
    their detail, since no other port can be probed through this policy."""
    return UrlPolicy(allowed_endpoints=frozenset({("127.0.0.1", port)}))


def names_to_loopback(*names: str) -> StaticResolver:
    return StaticResolver(dict.fromkeys(names, "127.0.0.1"))


async def test_fetches_an_image_when_private_addresses_are_allowed(
    server: LocalServer, session: aiohttp.ClientSession
) -> None:
    fetched = await SafeFetcher(session, LOCAL).fetch(server.url("/image.png"), accept=IMAGE_MIMES)

    assert fetched.status == 200
    assert fetched.body == png_bytes()
    assert fetched.mime == "image/png"
    assert fetched.final_url == server.url("/image.png")
    assert fetched.headers["Content-Type"] == "image/png"


async def test_the_same_server_is_refused_by_default(
    server: LocalServer, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(UrlRefused, match=re.escape("loopback address 127.0.0.1")):
        await SafeFetcher(session).fetch(server.url("/image.png"))
    assert server.requests == []


async def test_a_public_looking_name_that_resolves_to_loopback_is_refused(
    server: LocalServer, session: aiohttp.ClientSession
) -> None:
    resolver = names_to_loopback("images.example.com")
    fetcher = SafeFetcher(session, resolver=resolver)

    with pytest.raises(UrlRefused) as caught:
        await fetcher.fetch(server.url("/image.png", host="images.example.com"))

    assert caught.value.reason == "images.example.com resolves to a loopback address 127.0.0.1"
    # The operator reading it learns which settings would allow it.
    assert caught.value.message == (
        "URL refused: images.example.com resolves to a loopback address 127.0.0.1 (to allow "
        "it, set CONVEYOR_ALLOW_PRIVATE_URLS=true, or name the host in "
        "CONVEYOR_ALLOWED_FETCH_HOSTS or its network in CONVEYOR_ALLOWED_FETCH_NETWORKS)"
    )
    assert resolver.lookups == ["images.example.com"]
    assert server.requests == []


async def test_connects_to_the_vetted_address_and_keeps_the_name_as_host(
    server: LocalServer, session: aiohttp.ClientSession
) -> None:
    resolver = names_to_loopback("images.example.test")
    fetcher = SafeFetcher(session, LOCAL, resolver=resolver)

    fetched = await fetcher.fetch(server.url("/echo", host="images.example.test"))

    # The name exists in no DNS: the request arrived because the fetcher connected to the
    # address the resolver returned, once, and told the server which host it wanted.
    echoed = json.loads(fetched.body)
    assert echoed["host"] == f"images.example.test:{server.port}"
    assert resolver.lookups == ["images.example.test"]
    assert fetched.final_url == server.url("/echo", host="images.example.test")


class RebindingResolver:
    """First answer is the vetted one; every later lookup answers the metadata address."""

    def __init__(self, first: str) -> None:
        self.answers = [first]
        self.lookups = 0

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        self.lookups += 1
        return [ip_address(self.answers[0] if self.lookups == 1 else "169.254.169.254")]


async def test_dns_rebinding_gets_no_second_answer_within_a_hop(
    server: LocalServer, session: aiohttp.ClientSession
) -> None:
    resolver = RebindingResolver("127.0.0.1")
    policy = UrlPolicy(allowed_networks=(ip_network("127.0.0.1/32"),))

    fetched = await SafeFetcher(session, policy, resolver=resolver).fetch(
        server.url("/image.png", host="rebind.test")
    )

    assert fetched.body == png_bytes()
    assert resolver.lookups == 1


async def test_dns_rebinding_on_a_redirect_hop_is_caught_at_that_hop(
    server: LocalServer, session: aiohttp.ClientSession
) -> None:
    resolver = RebindingResolver("127.0.0.1")
    policy = UrlPolicy(allowed_networks=(ip_network("127.0.0.1/32"),))

    metadata = re.escape("link-local (cloud metadata) address 169.254.169.254")
    with pytest.raises(UrlRefused, match=metadata):
        await SafeFetcher(session, policy, resolver=resolver).fetch(
            server.url("/chain/1", host="rebind.test")
        )
    assert resolver.lookups == 2
    assert server.requests == ["/chain/1"]


async def test_a_name_with_one_private_address_among_others_is_refused(
    server: LocalServer, session: aiohttp.ClientSession
) -> None:
    resolver = StaticResolver({"mixed.test": ["127.0.0.1", "10.0.0.5"]})
    policy = UrlPolicy(allowed_networks=(ip_network("127.0.0.1/32"),))

    with pytest.raises(UrlRefused, match=re.escape("private address 10.0.0.5")):
        await SafeFetcher(session, policy, resolver=resolver).fetch(
            server.url("/image.png", host="mixed.test")
        )
    assert server.requests == []


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://10.0.0.5/x.jpg", "private address 10.0.0.5"),
        ("http://169.254.169.254/latest/meta-data/", "link-local (cloud metadata)"),
        ("http://[::1]/", "loopback address ::1"),
        ("http://[::ffff:127.0.0.1]/", "IPv4-mapped form of a loopback address"),
        ("http://2130706433/", "loopback address 127.0.0.1"),
        ("http://localhost/", "loopback name"),
        ("http://internal.test/", "internal.test resolves to a loopback address"),
        ("file:///etc/passwd", "only http and https"),
        ("data:image/png;base64,iVBORw0KGgo=", "only http and https"),
        ("http://user:pw@public.test/", "user name or password"),
    ],
)
async def test_redirects_are_checked_at_every_hop(
    server: LocalServer, session: aiohttp.ClientSession, location: str, reason: str
) -> None:
    fetcher = SafeFetcher(
        session, PUBLIC_HOST, resolver=names_to_loopback("public.test", "internal.test")
    )
    start = server.url(f"/redirect?to={location}", host="public.test")

    with pytest.raises(UrlRefused) as caught:
        await fetcher.fetch(start, allow_data=True)

    assert reason in caught.value.message
    assert len(server.requests) == 1  # the first hop ran; the second never left


async def test_relative_redirects_and_chains_within_the_limit_are_followed(
    server: LocalServer, session: aiohttp.ClientSession
) -> None:
    fetcher = SafeFetcher(session, replace(LOCAL, max_redirects=3))

    fetched = await fetcher.fetch(server.url("/chain/2"))

    assert fetched.body == png_bytes()
    assert fetched.final_url == server.url("/image.png")
    assert server.requests == ["/chain/2", "/chain/1", "/chain/0", "/image.png"]


async def test_too_many_redirects_fail_permanently(
    server: LocalServer, session: aiohttp.ClientSession
) -> None:
    fetcher = SafeFetcher(session, replace(LOCAL, max_redirects=2))

    with pytest.raises(FetchFailed, match="more than 2 redirects") as caught:
        await fetcher.fetch(server.url("/chain/5"))
    assert caught.value.retryable is False
    assert len(server.requests) == 3


async def test_caller_headers_never_follow_a_redirect_to_another_origin(
    server: LocalServer, session: aiohttp.ClientSession
) -> None:
    fetcher = SafeFetcher(session, LOCAL, resolver=names_to_loopback("a.test", "b.test"))
    secret = {"Authorization": "Bearer s3cret"}

    same = await fetcher.fetch(
        server.url(f"/redirect?to={server.url('/echo', host='a.test')}", host="a.test"),
        headers=secret,
    )
    other = await fetcher.fetch(
        server.url(f"/redirect?to={server.url('/echo', host='b.test')}", host="a.test"),
        headers=secret,
    )

    assert json.loads(same.body)["headers"].get("Authorization") == "Bearer s3cret"
    assert "Authorization" not in json.loads(other.body)["headers"]


async def test_a_303_after_post_becomes_a_get_without_the_body(
    server: LocalServer, session: aiohttp.ClientSession
) -> None:
    fetcher = SafeFetcher(session, LOCAL)
    posted = await fetcher.fetch(server.url("/echo"), method="POST", data=b'{"job": 1}')
    redirected = await fetcher.fetch(
        server.url("/redirect?status=303&to=/echo"), method="POST", data=b'{"job": 1}'
    )

    assert json.loads(posted.body)["method"] == "POST"
    assert json.loads(posted.body)["body"] == '{"job": 1}'
    assert json.loads(redirected.body)["method"] == "GET"
    assert json.loads(redirected.body)["body"] == ""


@pytest.mark.timeout(30)
async def test_an_endless_body_is_cut_off_at_the_limit(
    server: LocalServer, session: aiohttp.ClientSession
) -> None:
    limit = 256 * 1024
    fetcher = SafeFetcher(session, LOCAL)

    with pytest.raises(FetchTooLarge, match="more than the limit of 262,144 bytes") as caught:
        await fetcher.fetch(server.url("/endless"), max_bytes=limit)

    assert caught.value.status_code == 413
    # The fetcher dropped the connection: the server's writes fail long before 5 GB.
    await asyncio.wait_for(server.endless_stopped.wait(), timeout=10)
    assert server.endless_sent < 64 * 1024 * 1024 < FIVE_GB


@pytest.mark.timeout(30)
async def test_streaming_stops_at_the_limit_without_buffering_the_body(
    server: LocalServer, session: aiohttp.ClientSession
) -> None:
    limit = 1024 * 1024
    received = 0
    with pytest.raises(FetchTooLarge):
        async with SafeFetcher(session, LOCAL).stream(
            server.url("/endless"), max_bytes=limit, chunk_size=16 * 1024
        ) as body:
            assert body.mime == "image/png"
            async for chunk in body:
                assert len(chunk) <= 16 * 1024 + 512
                received += len(chunk)
    assert received <= limit
    await asyncio.wait_for(server.endless_stopped.wait(), timeout=10)
    assert server.endless_sent < 64 * 1024 * 1024


async def test_an_announced_length_over_the_limit_is_refused_before_reading(
    server: LocalServer, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(FetchTooLarge, match="sends 5,368,709,120 bytes"):
        await SafeFetcher(session, LOCAL).fetch(server.url("/announced"))


async def test_streams_a_body_in_chunks(
    server: LocalServer, session: aiohttp.ClientSession
) -> None:
    expected = png_bytes() + bytes(3 * 1024 * 1024)
    async with SafeFetcher(session, LOCAL).stream(
        server.url(f"/padded/{3 * 1024 * 1024}"), accept={"image/*"}, chunk_size=64 * 1024
    ) as body:
        assert (body.status, body.mime, body.content_length) == (200, "image/png", len(expected))
        chunks = [chunk async for chunk in body]
    assert b"".join(chunks) == expected
    assert len(chunks) > 3 * 1024 * 1024 // (64 * 1024)
    assert max(len(chunk) for chunk in chunks) <= 64 * 1024
    with pytest.raises(RuntimeError, match="only once"):
        body.__aiter__()


async def test_html_served_as_an_image_is_not_an_image(
    server: LocalServer, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(NotAnImage) as caught:
        await SafeFetcher(session, LOCAL).fetch(server.url("/page"), accept=IMAGE_MIMES)
    assert caught.value.mime == "text/html"
    assert caught.value.message == "127.0.0.1 did not send an image (got text/html)"

    with pytest.raises(UnexpectedContentType, match="expected application/pdf") as other:
        await SafeFetcher(session, LOCAL).fetch(
            server.url("/image.png"), accept={"application/pdf"}
        )
    assert not isinstance(other.value, NotAnImage)


@pytest.mark.timeout(30)
async def test_a_server_that_never_answers_times_out(
    server: LocalServer, session: aiohttp.ClientSession
) -> None:
    fetcher = SafeFetcher(session, replace(only_endpoint(server.port), read_timeout=0.2))

    with pytest.raises(FetchFailed, match=re.escape("timed out waiting for 127.0.0.1")) as caught:
        await fetcher.fetch(server.url("/hang"))
    assert caught.value.retryable is True


@pytest.mark.timeout(30)
async def test_a_body_that_stalls_times_out(
    server: LocalServer, session: aiohttp.ClientSession
) -> None:
    fetcher = SafeFetcher(session, replace(only_endpoint(server.port), read_timeout=0.2))

    with pytest.raises(FetchFailed, match="timed out") as caught:
        await fetcher.fetch(server.url("/stall"))
    assert caught.value.retryable is True


@pytest.mark.parametrize(
    ("code", "retryable"), [(404, False), (403, False), (410, False), (429, True), (503, True)]
)
async def test_http_errors_say_whether_to_retry(
    server: LocalServer, session: aiohttp.ClientSession, code: int, retryable: bool
) -> None:
    with pytest.raises(FetchFailed, match=f"answered HTTP {code}") as caught:
        await SafeFetcher(session, only_endpoint(server.port)).fetch(server.url(f"/status/{code}"))
    assert caught.value.retryable is retryable
    assert caught.value.http_status == code


async def test_a_closed_port_is_a_retryable_connection_failure(
    session: aiohttp.ClientSession, closed_port: int
) -> None:
    with pytest.raises(FetchFailed, match=re.escape("could not connect to 127.0.0.1")) as caught:
        await SafeFetcher(session, only_endpoint(closed_port)).fetch(
            f"http://127.0.0.1:{closed_port}/x.png"
        )
    assert caught.value.retryable is True


async def test_an_unknown_name_is_a_permanent_failure(session: aiohttp.ClientSession) -> None:
    fetcher = SafeFetcher(session, resolver=StaticResolver({}))
    with pytest.raises(FetchFailed, match=re.escape("nowhere.test not found")) as caught:
        await fetcher.fetch("https://nowhere.test/a.jpg")
    assert caught.value.retryable is False


async def test_a_flaky_resolver_is_a_retryable_failure(session: aiohttp.ClientSession) -> None:
    class Failing:
        async def resolve(self, host: str, port: int) -> list[IPAddress]:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    with pytest.raises(FetchFailed, match="could not look up") as caught:
        await SafeFetcher(session, resolver=Failing()).fetch("https://flaky.test/a.jpg")
    assert caught.value.retryable is True


async def test_data_urls_only_when_the_call_allows_them(session: aiohttp.ClientSession) -> None:
    image = png_bytes(4, 4)
    url = "data:image/png;base64," + base64.b64encode(image).decode()
    fetcher = SafeFetcher(session)

    fetched = await fetcher.fetch(url, allow_data=True, accept=IMAGE_MIMES)
    assert (fetched.body, fetched.mime, fetched.final_url) == (
        image,
        "image/png",
        "data:image/png;base64,",
    )

    with pytest.raises(UrlRefused, match="only http and https"):
        await fetcher.fetch(url)
    with pytest.raises(FetchTooLarge):
        await fetcher.fetch(url, allow_data=True, max_bytes=len(image) - 1)
    with pytest.raises(NotAnImage):
        await fetcher.fetch("data:text/plain,hello", allow_data=True, accept=IMAGE_MIMES)
    with pytest.raises(FetchFailed, match="not valid base64"):
        await fetcher.fetch("data:image/png;base64,@@@@", allow_data=True)


async def test_the_system_resolver_and_address_failover(server: LocalServer) -> None:
    # localhost comes from /etc/hosts, often as ::1 first: the server listens on 127.0.0.1
    # only, so a refused ::1 must move on to the next vetted address.
    addresses = await SystemResolver().resolve("localhost", server.port)
    assert ip_address("127.0.0.1") in addresses
    policy = UrlPolicy(allowed_hosts=frozenset({"localhost"}))

    async with aiohttp.ClientSession() as session:
        fetched = await SafeFetcher(session, policy).fetch(server.url("/image.png", "localhost"))
        with pytest.raises(UrlRefused, match="localhost is a loopback name"):
            await SafeFetcher(session).fetch(server.url("/image.png", "localhost"))

    assert fetched.body == png_bytes()


def test_the_public_surface_is_what_all_lists() -> None:
    import conveyor.net as net

    exported = {name for name in dir(net) if not name.startswith("_")}
    modules = {"destinations", "errors", "fetcher", "policy", "resolver", "annotations"}
    assert set(net.__all__) == exported - modules


async def test_the_deadline_covers_the_whole_fetch_body_included(
    server: LocalServer, session: aiohttp.ClientSession
) -> None:
    # Each read answers within the read timeout; the body never ends: only the deadline,
    # which spans every hop and the whole body, stops it.
    fetcher = SafeFetcher(session, UrlPolicy(allow_private=True, deadline=0.3))
    with pytest.raises(FetchFailed, match=r"within 0\.3 s") as caught:
        async with fetcher.stream(server.url("/redirect?to=/stall&status=302")) as body:
            await body.read()
    assert caught.value.retryable


async def test_an_allowed_endpoint_is_fetched_and_every_other_port_refused_alike(
    server: LocalServer, session: aiohttp.ClientSession, closed_port: int
) -> None:
    # What simulate mode allows: the simulator's host and port, nothing else on that host.
    fetcher = SafeFetcher(session, only_endpoint(server.port))
    fetched = await fetcher.fetch(server.url("/image.png"), accept=IMAGE_MIMES)
    assert fetched.body == png_bytes()

    async with local_server() as other:  # something else listening on 127.0.0.1
        messages = set()
        for port in (other.port, closed_port):
            with pytest.raises(UrlRefused) as caught:
                await fetcher.fetch(f"http://127.0.0.1:{port}/image.png")
            messages.add(caught.value.message)
        assert other.requests == []
    assert messages == {
        f"URL refused: the host is a loopback address 127.0.0.1 ({PRIVATE_URL_HINT})"
    }


async def _speak_something_else(
    _reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")
    await writer.drain()
    writer.close()


async def test_failures_at_an_internal_address_all_read_the_same(
    server: LocalServer, session: aiohttp.ClientSession, closed_port: int
) -> None:
    # Private addresses allowed wholesale (the operator's switch): whether a port is closed,
    # answers HTTP 404 or 503, or speaks another protocol must not show in the error text.
    not_http = await asyncio.start_server(_speak_something_else, "127.0.0.1", 0)
    not_http_port = not_http.sockets[0].getsockname()[1]
    fetcher = SafeFetcher(session, replace(LOCAL, read_timeout=2))
    messages = set()
    try:
        for url in (
            f"http://127.0.0.1:{closed_port}/x.png",
            server.url("/status/404"),
            server.url("/status/503"),
            f"http://127.0.0.1:{not_http_port}/x.png",
        ):
            with pytest.raises(FetchFailed) as caught:
                await fetcher.fetch(url)
            messages.add(caught.value.message)
    finally:
        not_http.close()
        await not_http.wait_closed()
    assert messages == {"could not fetch from 127.0.0.1"}


async def test_a_webhook_destination_is_vetted_before_anything_is_sent(
    session: aiohttp.ClientSession,
) -> None:
    resolver = StaticResolver({"hooks.example": "93.184.216.34", "inside.example": "10.0.0.5"})
    fetcher = SafeFetcher(session, resolver=resolver)
    await fetcher.check_destination("https://hooks.example/conveyor")
    await fetcher.check_destination("http://93.184.216.34/hook")
    for url, reason in (
        ("https://inside.example/hook", "inside.example resolves to a private address"),
        ("http://127.0.0.1:8000/v1/jobs", "loopback address 127.0.0.1"),
        ("http://localhost/hook", "localhost is a loopback name"),
        ("https://missing.example/hook", "missing.example not found"),
        ("ftp://hooks.example/hook", "only http and https"),
    ):
        with pytest.raises(UrlRefused, match=re.escape(reason)):
            await fetcher.check_destination(url)
    assert resolver.lookups == ["hooks.example", "inside.example", "missing.example"]


class _SilentResolver:
    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_lookup_that_does_not_finish_lets_a_webhook_through(
    session: aiohttp.ClientSession,
) -> None:
    # Delivery checks again; a slow DNS server must not refuse a client's good URL.
    fetcher = SafeFetcher(session, resolver=_SilentResolver())
    await fetcher.check_destination("https://hooks.example/x", lookup_timeout=0.05)
