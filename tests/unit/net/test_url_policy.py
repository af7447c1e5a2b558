"""UrlPolicy: every refused address class, odd spellings, schemes, credentials, exceptions."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conveyor.config import Settings
from conveyor.net import Target, UrlPolicy, UrlRefused, address_problem, parse_ip_host
from conveyor.net.errors import PRIVATE_URL_HINT

DEFAULT = UrlPolicy()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1/", "loopback address 127.0.0.1"),
        ("http://127.255.255.254:8080/x", "loopback address 127.255.255.254"),
        ("http://10.0.0.5/", "private address 10.0.0.5"),
        ("http://172.16.0.1/", "private address 172.16.0.1"),
        ("http://172.31.255.255/", "private address 172.31.255.255"),
        ("http://192.168.1.1/", "private address 192.168.1.1"),
        ("http://169.254.169.254/latest/meta-data/", "link-local (cloud metadata) address"),
        ("http://100.64.0.1/", "shared (CGNAT) address 100.64.0.1"),
        ("http://100.127.255.254/", "shared (CGNAT) address"),
        ("http://224.0.0.1/", "multicast address 224.0.0.1"),
        ("http://0.0.0.0/", "unspecified address 0.0.0.0"),
        ("http://240.0.0.1/", "reserved address 240.0.0.1"),
        ("http://255.255.255.255/", "broadcast address"),
        ("http://192.0.2.10/", "documentation address"),
        ("http://198.18.0.1/", "benchmarking address"),
        ("https://[::1]/", "loopback address ::1"),
        ("http://[::]/", "unspecified address ::"),
        ("http://[fc00::1]/", "private (unique-local) address fc00::1"),
        ("http://[fd12:3456::1]/", "unique-local"),
        ("http://[fe80::1]/", "link-local address fe80::1"),
        ("http://[fec0::1]/", "site-local"),
        ("http://[ff02::1]/", "multicast address ff02::1"),
        ("http://[2001:db8::1]/", "documentation address"),
        ("http://[2001::1]/", "Teredo"),
        ("http://[100::1]/", "discard-only"),
        ("http://[4000::1]/", "reserved address 4000::1"),
        # IPv4 inside IPv6: judged by the IPv4 address it carries.
        ("http://[::ffff:127.0.0.1]/", "IPv4-mapped form of a loopback address 127.0.0.1"),
        ("http://[::ffff:10.0.0.5]/", "IPv4-mapped form of a private address 10.0.0.5"),
        ("http://[::ffff:169.254.169.254]/", "IPv4-mapped form of a link-local"),
        ("http://[::ffff:7f00:1]/", "loopback address 127.0.0.1"),
        ("http://[64:ff9b::10.0.0.5]/", "NAT64 form of a private address 10.0.0.5"),
        ("http://[64:ff9b::7f00:1]/", "NAT64 form of a loopback address 127.0.0.1"),
        ("http://[64:ff9b:1::1]/", "local-use NAT64"),
        ("http://[2002:7f00:1::]/", "6to4 form of a loopback address 127.0.0.1"),
        ("http://[2002:a9fe:a9fe::1]/", "6to4 form of a link-local"),
        ("http://[::127.0.0.1]/", "IPv4-compatible form of a loopback address"),
        # Spellings that C resolvers and browsers turn into addresses.
        ("http://2130706433/", "loopback address 127.0.0.1"),
        ("http://0x7f.1/", "loopback address 127.0.0.1"),
        ("http://0x7f000001/", "loopback address 127.0.0.1"),
        ("http://0177.0.0.1/", "loopback address 127.0.0.1"),
        ("http://017700000001/", "loopback address 127.0.0.1"),
        ("http://127.1/", "loopback address 127.0.0.1"),
        ("http://127.0.1/", "loopback address 127.0.0.1"),
        ("http://0X7F.0.0.1/", "loopback address 127.0.0.1"),
        ("http://0xa.0.0.5/", "private address 10.0.0.5"),
        ("http://167772165/", "private address 10.0.0.5"),
        ("http://169.254.43518/", "link-local (cloud metadata) address 169.254.169.254"),
        ("http://0/", "unspecified address 0.0.0.0"),
        ("http://127.0.0.1./", "loopback address 127.0.0.1"),
        ("http://localhost/", "localhost is a loopback name"),
        ("http://LOCALHOST:8000/", "localhost is a loopback name"),
        ("http://api.localhost./", "api.localhost is a loopback name"),
    ],
)
def test_refused_addresses_say_what_they_are(url: str, expected: str) -> None:
    with pytest.raises(UrlRefused) as caught:
        DEFAULT.check_url(url)
    assert expected in caught.value.message
    assert caught.value.message.startswith("URL refused: ")
    assert caught.value.status_code == 400
    assert caught.value.retryable is False


@pytest.mark.parametrize(
    "url",
    [
        "http://134744072/",  # 8.8.8.8 as one number
        "http://0x8.0x8.0x8.0x8/",
        "http://010.010.010.010/",  # octal: 8.8.8.8, not 10.10.10.10
        "http://8.8.2056/",
    ],
)
def test_public_addresses_in_unusual_spellings_are_refused_too(url: str) -> None:
    with pytest.raises(UrlRefused, match="unusual spelling"):
        DEFAULT.check_url(url)


def test_unusual_spelling_is_decoded_the_way_inet_aton_does() -> None:
    assert parse_ip_host("010.010.010.010") == (IPv4Address("8.8.8.8"), False)
    assert parse_ip_host("0x7f.1") == (IPv4Address("127.0.0.1"), False)
    assert parse_ip_host("8.8.8.8") == (IPv4Address("8.8.8.8"), True)
    assert parse_ip_host("example.com") == (None, True)
    assert parse_ip_host("::1") == (IPv6Address("::1"), True)


@pytest.mark.parametrize(
    "url",
    ["http://1.2.3.4.5/", "http://256.1.1.1/", "http://08.0.0.1/", "http://1.2.3.0x100/"],
)
def test_numeric_hosts_that_are_no_address_are_refused(url: str) -> None:
    with pytest.raises(UrlRefused, match="malformed IP address"):
        DEFAULT.check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/a.jpg",
        "data:image/png;base64,iVBORw0KGgo=",
        "gopher://example.com/",
        "javascript:alert(1)",
        "//example.com/a.jpg",
        "/a.jpg",
        "",
    ],
)
def test_only_http_and_https_are_fetched(url: str) -> None:
    with pytest.raises(UrlRefused, match="only http and https"):
        DEFAULT.check_url(url)


@pytest.mark.parametrize(
    "url",
    ["http://user:secret@example.com/", "http://user@example.com/", "https://:pw@example.com/"],
)
def test_credentials_in_urls_are_refused(url: str) -> None:
    with pytest.raises(UrlRefused, match="user name or password"):
        DEFAULT.check_url(url)


@pytest.mark.parametrize("url", ["http:///path", "http://example.com:0/"])
def test_urls_without_a_usable_host_or_port_are_refused(url: str) -> None:
    with pytest.raises(UrlRefused):
        DEFAULT.check_url(url)


@pytest.mark.parametrize(
    ("url", "host", "literal"),
    [
        ("https://cdn.example.com/a.jpg#frag", "cdn.example.com", None),
        ("http://8.8.8.8/x", "8.8.8.8", IPv4Address("8.8.8.8")),
        ("https://[2606:4700::1111]/", "2606:4700::1111", IPv6Address("2606:4700::1111")),
        ("http://[::ffff:8.8.8.8]/", "::ffff:808:808", IPv6Address("::ffff:8.8.8.8")),
        ("http://[64:ff9b::8.8.8.8]/", "64:ff9b::808:808", IPv6Address("64:ff9b::808:808")),
        ("http://EXAMPLE.com./x", "example.com", None),
        ("http://bücher.example/", "xn--bcher-kva.example", None),
    ],
)
def test_public_urls_pass(url: str, host: str, literal: object) -> None:
    target = DEFAULT.check_url(url)
    assert target.host == host
    assert target.literal == literal
    assert target.url.fragment == ""


def test_host_header_keeps_the_name_and_non_default_port() -> None:
    assert DEFAULT.check_url("https://cdn.example.com/x").host_header == "cdn.example.com"
    assert DEFAULT.check_url("http://cdn.example.com:8080/x").host_header == "cdn.example.com:8080"
    assert DEFAULT.check_url("http://[2606:4700::1]:81/").host_header == "[2606:4700::1]:81"


def test_allow_private_lets_every_address_class_through_but_not_other_schemes() -> None:
    relaxed = UrlPolicy(allow_private=True)
    for url in ("http://127.0.0.1/", "http://[::1]/", "http://10.0.0.5/", "http://localhost/"):
        relaxed.check_url(url)
    # An unusual spelling is decoded to the address the connection will really use.
    assert relaxed.check_url("http://2130706433/").host == "127.0.0.1"
    with pytest.raises(UrlRefused):
        relaxed.check_url("file:///etc/passwd")
    with pytest.raises(UrlRefused):
        relaxed.check_url("http://u:p@127.0.0.1/")


def _target(host: str) -> Target:
    return DEFAULT.check_url(f"https://{host}/image.jpg")


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1", "images.example.com resolves to a loopback address 127.0.0.1"),
        ("10.0.0.5", "images.example.com resolves to a private address 10.0.0.5"),
        ("169.254.169.254", "resolves to a link-local (cloud metadata) address 169.254.169.254"),
        ("::1", "resolves to a loopback address ::1"),
        ("::ffff:192.168.0.1", "IPv4-mapped form of a private address 192.168.0.1"),
        ("64:ff9b::a00:5", "NAT64 form of a private address 10.0.0.5"),
    ],
)
def test_resolved_addresses_are_checked(address: str, expected: str) -> None:
    with pytest.raises(UrlRefused) as caught:
        DEFAULT.check_addresses(_target("images.example.com"), [ip_address(address)])
    assert expected in caught.value.message


def test_one_bad_address_among_good_ones_refuses_the_host() -> None:
    addresses = [ip_address("93.184.216.34"), ip_address("2606:2800::1"), ip_address("10.1.2.3")]
    with pytest.raises(UrlRefused, match=re.escape("private address 10.1.2.3")):
        DEFAULT.check_addresses(_target("images.example.com"), addresses)
    DEFAULT.check_addresses(_target("images.example.com"), addresses[:2])


def test_a_name_with_no_address_is_refused() -> None:
    with pytest.raises(UrlRefused, match="resolves to no address"):
        DEFAULT.check_addresses(_target("images.example.com"), [])


def test_operator_exceptions_are_narrow() -> None:
    policy = UrlPolicy(
        allowed_hosts=frozenset({"store.internal", ".corp.example"}),
        allowed_networks=(ip_network("10.20.0.0/16"),),
    )
    private = [ip_address("192.168.5.5")]
    policy.check_addresses(_target("store.internal"), private)
    policy.check_addresses(_target("img.corp.example"), private)
    policy.check_addresses(_target("images.example.com"), [ip_address("10.20.3.4")])
    with pytest.raises(UrlRefused):
        policy.check_addresses(_target("other.internal"), private)
    with pytest.raises(UrlRefused):
        policy.check_addresses(_target("corp.example.evil.com"), private)
    with pytest.raises(UrlRefused):
        policy.check_addresses(_target("images.example.com"), [ip_address("10.21.0.1")])
    policy.check_url("http://10.20.0.9/")
    with pytest.raises(UrlRefused):
        policy.check_url("http://10.21.0.9/")


def test_policy_refuses_unsafe_configuration() -> None:
    with pytest.raises(ValueError, match="schemes"):
        UrlPolicy(allowed_schemes=frozenset({"http", "file"}))
    with pytest.raises(ValueError, match="max_bytes"):
        UrlPolicy(max_bytes=0)


_BLOCKED_V4 = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
]


@given(st.sampled_from(_BLOCKED_V4).flatmap(lambda net: st.ip_addresses(v=4, network=net)))
def test_every_spelling_of_a_blocked_ipv4_address_is_refused(address: IPv4Address) -> None:
    number = int(address)
    octets = str(address).split(".")
    spellings = [
        str(address),
        str(number),
        hex(number),
        "0" + oct(number)[2:],
        ".".join(hex(int(o)) for o in octets),
        f"{octets[0]}.{octets[1]}.{int(octets[2]) * 256 + int(octets[3])}",
        f"[::ffff:{address}]",
        f"[64:ff9b::{address}]",
    ]
    for spelling in spellings:
        with pytest.raises(UrlRefused):
            DEFAULT.check_url(f"http://{spelling}/")


@given(st.ip_addresses(v=4))
def test_addresses_python_calls_special_are_refused(address: IPv4Address) -> None:
    special = (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address in ip_network("100.64.0.0/10")
    )
    if special:
        assert address_problem(address) is not None


@given(st.ip_addresses(v=6))
def test_ipv6_addresses_python_calls_special_are_refused(address: IPv6Address) -> None:
    carries_v4 = address.ipv4_mapped or address.sixtofour or address in ip_network("64:ff9b::/96")
    special = (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_site_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )
    if special and not carries_v4:
        assert address_problem(address) is not None


def test_deprecated_ipv4_compatible_form_is_refused_even_for_public_addresses() -> None:
    with pytest.raises(UrlRefused, match="deprecated IPv4-compatible address"):
        DEFAULT.check_url("http://[::8.8.8.8]/")


def test_an_allowed_endpoint_opens_one_port_of_one_host() -> None:
    policy = UrlPolicy(allowed_endpoints=frozenset({("127.0.0.1", 8100), ("LocalHost.", 9000)}))
    assert policy.check_url("http://127.0.0.1:8100/gen/result.png").host == "127.0.0.1"
    # The same address spelled as a number is the same endpoint, nothing more.
    assert policy.check_url("http://2130706433:8100/").host == "127.0.0.1"
    policy.check_url("http://localhost:9000/x")
    for other in (
        "http://127.0.0.1:8000/v1/jobs",  # the API
        "http://127.0.0.1:5432/",  # the database
        "http://127.0.0.1/",
        "http://127.0.0.2:8100/",
        "http://localhost:8100/",
        "http://localhost:9001/",
    ):
        with pytest.raises(UrlRefused):
            policy.check_url(other)


def test_an_allowed_endpoint_name_is_exempt_from_address_checks_on_its_port_only() -> None:
    policy = UrlPolicy(allowed_endpoints=frozenset({("sim.internal", 8100)}))
    loopback = [ip_address("127.0.0.1")]
    on_port = policy.check_url("http://sim.internal:8100/x")
    policy.check_addresses(on_port, loopback)
    with pytest.raises(UrlRefused, match="loopback address"):
        policy.check_addresses(policy.check_url("http://sim.internal:5432/"), loopback)


def test_closed_and_listening_internal_ports_are_refused_in_the_same_words() -> None:
    policy = UrlPolicy(allowed_endpoints=frozenset({("127.0.0.1", 8100)}))
    messages = set()
    for port in (1, 5432, 8000, 18399):
        with pytest.raises(UrlRefused) as caught:
            policy.check_url(f"http://127.0.0.1:{port}/")
        messages.add(caught.value.message)
    assert messages == {
        f"URL refused: the host is a loopback address 127.0.0.1 ({PRIVATE_URL_HINT})"
    }


def test_the_internal_test_counts_what_only_an_exception_lets_through() -> None:
    policy = UrlPolicy(
        allowed_networks=(ip_network("10.20.0.0/16"),),
        allowed_endpoints=frozenset({("127.0.0.1", 8100)}),
    )
    sim = policy.check_url("http://127.0.0.1:8100/")
    assert not policy.is_internal(sim, [ip_address("127.0.0.1")])
    store = policy.check_url("http://10.20.0.9/")
    assert policy.is_internal(store, [ip_address("10.20.0.9")])
    public = policy.check_url("http://images.example.com/")
    assert not policy.is_internal(public, [ip_address("93.184.216.34")])


@pytest.mark.parametrize(
    ("simulator_url", "endpoint"),
    [
        ("http://127.0.0.1:18310", ("127.0.0.1", 18310)),
        ("http://LOCALHOST:18311/", ("localhost", 18311)),
        ("http://[::1]:18312", ("::1", 18312)),
        ("http://sim.test", ("sim.test", 80)),
    ],
)
def test_simulate_mode_allows_the_simulator_endpoint_and_nothing_else(
    tmp_path: Path, simulator_url: str, endpoint: tuple[str, int]
) -> None:
    settings = Settings(
        _env_file=None, data_dir=tmp_path, simulate=True, simulator_url=simulator_url
    )
    policy = UrlPolicy.from_settings(settings)
    assert policy.allowed_endpoints == {endpoint}
    assert policy.allowed_networks == ()
    assert policy.allowed_hosts == frozenset()
    assert not policy.allow_private
    off = UrlPolicy.from_settings(settings.model_copy(update={"simulate": False}))
    assert off.allowed_endpoints == frozenset()
