"""HTTPS through a pinned address: the certificate and SNI are still checked for the name.

The fetcher hands aiohttp a URL naming the vetted IP; these tests prove that TLS still
verifies the certificate against the original host name (and sends it as SNI), using a
throwaway CA and a real TLS server on 127.0.0.1.
"""

from __future__ import annotations

import datetime
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from conveyor.net import FetchFailed, SafeFetcher, StaticResolver, UrlPolicy
from tests.unit.net.local_server import png_bytes

pytest.importorskip("cryptography")

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NAME = "images.example.test"


@dataclass
class Pki:
    ca_pem: bytes
    cert_file: Path
    key_file: Path


def _certificate(
    subject: str,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


def make_pki(tmp_path: Path, server_name: str) -> Pki:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Conveyor test CA")])
    ca_cert = _certificate("Conveyor test CA", ca_name, ca_key, ca_key, ca=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _certificate(server_name, ca_name, leaf_key, ca_key, ca=False)
    cert_file = tmp_path / "server.pem"
    key_file = tmp_path / "server.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Pki(ca_cert.public_bytes(serialization.Encoding.PEM), cert_file, key_file)


@dataclass
class TlsServer:
    port: int
    client_context: ssl.SSLContext
    server_names: list[str | None]


async def serve_tls(pki: Pki) -> AsyncIterator[TlsServer]:
    server_names: list[str | None] = []
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(pki.cert_file, pki.key_file)

    def remember_sni(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        server_names.append(name)

    server_context.sni_callback = remember_sni

    async def image(_: web.Request) -> web.Response:
        return web.Response(body=png_bytes(), content_type="image/png")

    app = web.Application()
    app.router.add_get("/image.png", image)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    try:
        client_context = ssl.create_default_context(cadata=pki.ca_pem.decode())
        yield TlsServer(runner.addresses[0][1], client_context, server_names)
    finally:
        await runner.cleanup()


@pytest.fixture
async def tls_for_the_name(tmp_path: Path) -> AsyncIterator[TlsServer]:
    async for server in serve_tls(make_pki(tmp_path, NAME)):
        yield server


@pytest.fixture
async def tls_for_another_name(tmp_path: Path) -> AsyncIterator[TlsServer]:
    async for server in serve_tls(make_pki(tmp_path, "someone-else.test")):
        yield server


def fetcher_for(session: aiohttp.ClientSession, port: int) -> SafeFetcher:
    # The name on this one port, as an exactly allowed endpoint: failures keep their detail.
    policy = UrlPolicy(allowed_endpoints=frozenset({(NAME, port)}))
    return SafeFetcher(session, policy, resolver=StaticResolver({NAME: "127.0.0.1"}))


async def test_https_to_a_pinned_address_verifies_the_names_certificate(
    tls_for_the_name: TlsServer,
) -> None:
    connector = aiohttp.TCPConnector(ssl=tls_for_the_name.client_context)
    async with aiohttp.ClientSession(connector=connector) as session:
        fetched = await fetcher_for(session, tls_for_the_name.port).fetch(
            f"https://{NAME}:{tls_for_the_name.port}/image.png"
        )

    assert fetched.body == png_bytes()
    assert tls_for_the_name.server_names == [NAME]


async def test_a_certificate_for_another_name_is_refused(tls_for_another_name: TlsServer) -> None:
    connector = aiohttp.TCPConnector(ssl=tls_for_another_name.client_context)
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(FetchFailed, match="invalid TLS certificate") as caught:
            await fetcher_for(session, tls_for_another_name.port).fetch(
                f"https://{NAME}:{tls_for_another_name.port}/image.png"
            )

    assert caught.value.retryable is False
