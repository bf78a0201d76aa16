"""Every test server hands out loopback addresses only.

The Magnum fake once answered ``api_address: https://188.184.1.10:6443`` (a real CERN host), so a
daemon driven by it tried to reach that host.  This scans the source of every test server and
fake, and every fixture they serve, for addresses outside 127.0.0.0/8: IPv4 literals (also the
templated ones, ``f"10.0.{i}.4"``) and the host of any URL given as an endpoint, server or API
address.  The EKS endpoint is made by moto at run time: ``test_credentials`` checks that one.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Where test servers live: the in-repo fakes, the providers' test conftests and fakes, fixtures.
SERVER_FILES = sorted(
    {
        *(ROOT / "burst" / "testing").glob("*.py"),
        *(ROOT / "providers").glob("*/tests/conftest.py"),
        *(ROOT / "providers").glob("*/tests/fake_*.py"),
        *(ROOT / "providers").glob("*/tests/support.py"),
        *(ROOT / "tests").glob("**/conftest.py"),
        *(p for p in (ROOT / "tests").glob("**/fixtures/**/*") if p.is_file()),
    }
)

_OCTET = r"(?:\d{1,3}|\{[^{}]*\})"
_IPV4 = re.compile(rf"(?<![\w.{{}}])(\d{{1,3}})\.{_OCTET}\.{_OCTET}\.{_OCTET}(?![\w.])")
_ADDRESS_URL = re.compile(
    r"""["']?(?:endpoint|server|api_address|url|apiEndpoint|serverAddress)["']?\s*[:=]\s*f?["']https?://([^/:"'\s]+)"""
)
#: Addresses a test server may name besides 127.0.0.0/8: "any" for a bind, and the IPv4 form of
#: version numbers in fixtures is filtered by requiring all four parts to look like an address.
_ALLOWED_FIRST = {"127"}


def _bad_ipv4(text: str) -> list[str]:
    bad = []
    for m in _IPV4.finditer(text):
        literal = m.group(0)
        if m.group(1) in _ALLOWED_FIRST or literal == "0.0.0.0":
            continue
        if "{" not in literal:
            try:
                ipaddress.IPv4Address(literal)
            except ValueError:
                continue  # not an address (a version like 3.11.7.999)
            if _looks_like_version(text, m.start()):
                continue
        bad.append(literal)
    return bad


def _looks_like_version(text: str, at: int) -> bool:
    before = text[max(0, at - 12) : at].lower()
    return any(word in before for word in ("version", "==", "v", "release"))


def _loopback_host(host: str) -> bool:
    if host in ("localhost", "[::1]") or host.startswith("{"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def test_the_scan_covers_every_test_server() -> None:
    names = {p.name for p in SERVER_FILES}
    assert {"kube_server.py", "openstack_fake.py", "fake_aws.py", "fake_gke.py", "conftest.py"} <= names
    assert len(SERVER_FILES) >= 15


def test_the_scan_finds_what_it_looks_for() -> None:
    # The patterns themselves: the address that caused the issue, a templated private one, a URL host.
    assert _bad_ipv4('c["api_address"] = "https://188.184.1.10:6443"') == ["188.184.1.10"]
    assert _bad_ipv4('ip = f"10.0.{n // 250}.{n % 250 + 4}"') == ["10.0.{n // 250}.{n % 250 + 4}"]
    assert _bad_ipv4('"server": "https://127.0.0.1:6443", "bind": "0.0.0.0"') == []
    assert _ADDRESS_URL.findall('"endpoint": "https://abc.gr7.eu-west-1.eks.amazonaws.com"') == [
        "abc.gr7.eu-west-1.eks.amazonaws.com"
    ]
    assert not _loopback_host("abc.gr7.eu-west-1.eks.amazonaws.com")
    assert _loopback_host("127.0.113.4") and _loopback_host("localhost")


def test_no_test_server_hands_out_a_non_loopback_address() -> None:
    found = []
    for path in SERVER_FILES:
        text = path.read_text(encoding="utf-8", errors="replace")
        for lineno, line in enumerate(text.splitlines(), 1):
            where = f"{path.relative_to(ROOT)}:{lineno}"
            found += [f"{where}: {ip}" for ip in _bad_ipv4(line)]
            found += [f"{where}: {host}" for host in _ADDRESS_URL.findall(line) if not _loopback_host(host)]
    assert found == []
