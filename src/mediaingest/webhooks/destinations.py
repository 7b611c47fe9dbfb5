"""Which addresses a tenant's webhook may reach, and resolving a URL to them exactly once.

A webhook URL is the tenant's, so without a guard it is a way into the cluster: loopback, private and
link-local addresses (the cloud metadata endpoint, 169.254.169.254) must never be called. Three
tricks get past a naive `ipaddress.ip_address(host).is_global`, and each is closed here:

- IPv6 forms that embed an IPv4 address (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64
  `64:ff9b::/96` and `64:ff9b:1::/48`, 6to4 `2002::/16`, Teredo `2001::/32`, SIIT `::ffff:0:a.b.c.d`):
  Python 3.11 calls several of them global. They are judged by the IPv4 address they carry.
- Numeric host spellings the resolver accepts (`2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1`):
  normalized with `inet_aton`, the same parser the C library uses, then judged.
- DNS rebinding (a name that resolves to a public address for the check and a private one for the
  connection): `resolve()` returns the addresses it checked, and the sender connects to one of them,
  so the name is resolved once per attempt.

An egress proxy is still the stronger guard; this is the floor every deployment gets.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Mapped, NAT64 (both prefixes) and SIIT: the IPv4 address is the low 32 bits.
_LOW32_PREFIXES = (
    ipaddress.ip_network("::ffff:0:0/96"),
    ipaddress.ip_network("64:ff9b::/96"),
    ipaddress.ip_network("64:ff9b:1::/48"),
    ipaddress.ip_network("::ffff:0:0:0/96"),
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_COMPATIBLE = ipaddress.ip_network("::/96")
_NUMERIC_HOST = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}", re.IGNORECASE)


class RefusedDestination(Exception):
    """The URL leads somewhere a webhook must not go; the message says where and why. Final."""


class UnresolvedHost(Exception):
    """The name does not resolve now; it may later (DNS not yet propagated), so worth another try."""


@dataclass(frozen=True)
class Destination:
    """A URL's host, and the checked addresses the connection may use (first one first)."""

    host: str
    port: int
    addresses: tuple[IPAddress, ...]


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries, in any of the forms that route to it."""
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address, the one traffic reaches
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if any(address in prefix for prefix in _LOW32_PREFIXES):
        return low32
    if address in _COMPATIBLE and int(address) > 1:  # ::a.b.c.d (deprecated), but not :: or ::1
        return low32
    return None


def refusal(address: IPAddress) -> str | None:
    """Why this address must not be called, or None when it is a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        carried = embedded_ipv4(address)
        if carried is not None:
            reason = refusal(carried)
            return f"{reason} (embedded in {address})" if reason else None
        if address.scope_id:
            return f"{address} is scoped to a local interface"
    if address.is_multicast:
        return f"{address} is a multicast address"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


def literal_address(host: str) -> IPAddress | None:
    """The address a host names by itself: an IP literal, or a numeric IPv4 spelling; else None (a name)."""
    bare = host.strip("[]")
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(bare):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(bare))
        except OSError:
            return None
    return None


def resolve(url: str, *, allow_private: bool = False) -> Destination:
    """The URL's host resolved once, every address checked; raises RefusedDestination or UnresolvedHost.

    With `allow_private` (tests, trusted internal receivers) addresses are resolved but not judged.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 80)
    addresses = _addresses(host, port)
    if not allow_private:
        _refuse_private(host, addresses)
    if not addresses:
        raise UnresolvedHost(f"cannot resolve {host!r}")
    return Destination(host=host, port=port, addresses=tuple(addresses))


def _refuse_private(host: str, addresses: list[IPAddress]) -> None:
    """Every address must pass: a name with one private address is a rebinding risk."""
    for address in addresses:
        reason = refusal(address)
        if reason is not None:
            raise RefusedDestination(f"destination {host!r} is refused: {reason}")


def _addresses(host: str, port: int) -> list[IPAddress]:
    """The host's addresses, each once, in the resolver's order (a literal address is its own)."""
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnresolvedHost(f"cannot resolve {host!r}") from exc
    # Each once, in order; without an IPv6 zone (%eth0).
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos))
