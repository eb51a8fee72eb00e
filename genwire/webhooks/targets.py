"""Which webhook targets may be called (SPEC §8): none in private address ranges,
unless the server allows them (`--allow-private-webhooks`).

Checked twice: at create time on what the URL says literally (an IP, `localhost`),
so a mistake is a 422 at once; and at send time on what the host resolves to, the
address then being the one connected to, so a name that resolves differently
later (DNS rebinding) cannot reach inside.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from genwire.errors import FieldError, InputRejected
from genwire.models import JsonObject

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: Resolves (host, port) to its addresses; tests pass a fake DNS.
AddressLookup = Callable[[str, int], Awaitable[list[IpAddress]]]


class RefusedTarget(Exception):
    """The target is in a private address range: never called, not retried."""


#: IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64, SIIT,
#: IPv4-compatible): what they reach is that IPv4 address.
_EMBEDS_IPV4_LOW32 = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("64:ff9b:1::/48"),
    ipaddress.IPv6Network("::ffff:0:0:0/96"),
    ipaddress.IPv6Network("::/96"),
)


def is_public(address: IpAddress) -> bool:
    """False for loopback, private, link-local, multicast, reserved and unspecified
    addresses, also when an IPv6 address carries one (::ffff:10.0.0.1, NAT64
    64:ff9b::a00:1, 6to4 2002:a00:1::, ::a00:1)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and any(address in network for network in _EMBEDS_IPV4_LOW32):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
    return address.is_global and not address.is_multicast


def literal_address(host: str) -> IpAddress | None:
    """The address a host names by itself, in any form a resolver accepts
    (`127.0.0.1`, `::1`, and the legacy `127.1`, `2130706433`, `0x7f.1`)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def refuse_private_webhook(webhook: JsonObject | None, allow_private: bool) -> None:
    """Raise InputRejected (field `webhook.url`) when the URL names a private target."""
    if webhook is None or allow_private:
        return
    host = (urlsplit(str(webhook.get("url"))).hostname or "").rstrip(".")
    address = literal_address(host)
    names_loopback = host == "localhost" or host.endswith(".localhost")
    if names_loopback or (address is not None and not is_public(address)):
        raise InputRejected(
            "the webhook target is in a private address range",
            [
                FieldError(
                    "webhook.url",
                    "must not name a loopback, private, link-local, multicast or reserved "
                    "address (the server refuses them unless started with "
                    "--allow-private-webhooks)",
                )
            ],
        )


@dataclass(frozen=True)
class Target:
    """Where to send: the URL with the checked address in place of the host, and
    what keeps the request addressed to the host (Host header, TLS name)."""

    url: httpx.URL
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, str] = field(default_factory=dict)


async def resolve_addresses(host: str, port: int) -> list[IpAddress]:
    """Every address `host` resolves to; OSError when it resolves to none."""
    found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [ipaddress.ip_address(str(item[4][0]).partition("%")[0]) for item in found]
    if not addresses:
        raise OSError(f"{host} resolves to no address")
    return list(dict.fromkeys(addresses))


async def pinned_target(
    url: str, allow_private: bool, lookup: AddressLookup = resolve_addresses
) -> Target:
    """The target of `url`, pinned to an address checked to be public.

    RefusedTarget when any address of the host is private (unless allowed): a name
    that resolves both ways is not to be trusted with either.
    """
    parsed = httpx.URL(url)
    if allow_private:
        return Target(parsed)
    host = parsed.host
    address = literal_address(host)
    if address is not None:
        addresses = [address]
    else:
        addresses = await lookup(host, parsed.port or (443 if parsed.scheme == "https" else 80))
    if not all(is_public(item) for item in addresses):
        raise RefusedTarget("private address")
    if address is not None:
        return Target(parsed)
    headers = {"host": parsed.netloc.decode("ascii")}
    extensions = {"sni_hostname": host} if parsed.scheme == "https" else {}
    return Target(parsed.copy_with(host=str(addresses[0])), headers, extensions)
