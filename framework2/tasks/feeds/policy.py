"""Which URLs a feed may reach: public addresses only, unless the allowlist names the host or network."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

import httpx

from framework2.blocks.competitor_feed import ALLOWED_SCHEMES
from framework2.tasks.feeds.model import PermanentFeedError
from framework2.tasks.http_fetch import (
    IPNetwork,
    literal_address,
    non_public_kind,
)


def _host(url: str) -> str:
    """host[:port] of a URL, without user info, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    try:
        port = parts.port
    except ValueError:  # a non-numeric port; httpx will refuse the URL with its own message
        return host
    return f"{host}:{port}" if port else host


def host_is_allowlisted(url: str, allowlist: Sequence[str]) -> bool:
    """True when ``allowlist`` names the URL's host, alone or with its port ("127.0.0.1:8080"; a URL without a
    port has its scheme's, so "feeds.example.com:443" matches https://feeds.example.com/x)."""
    try:
        # The host as httpx reads it: the client that connects must not see a different host than we allowed.
        parsed = httpx.URL(url.strip())
        host = parsed.host.lower()
        port = urlsplit(url.strip()).port or {"https": 443, "http": 80}.get(parsed.scheme)
    except (httpx.InvalidURL, ValueError):
        return False
    allowed = {entry.strip().lower() for entry in allowlist}
    if not host:
        return False
    if host in allowed or f"{host}:{port}" in allowed or f"[{host}]:{port}" in allowed:
        return True
    address = literal_address(host)
    return address is not None and any(
        "/" in entry and address in network
        for entry, network in zip(allowlist, _networks_of(allowlist), strict=True)
        if network is not None
    )


def _networks_of(allowlist: Sequence[str]) -> list[IPNetwork | None]:
    """Each allowlist entry's IP address or network, None for a host name."""
    networks: list[IPNetwork | None] = []
    for entry in allowlist:
        text = entry.strip()
        if text.startswith("[") and "]" in text:
            text = text[1 : text.index("]")]
        elif text.count(":") == 1:
            text = text.split(":", 1)[0]
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            networks.append(None)
    return networks


def private_networks(allowlist: Sequence[str]) -> tuple[IPNetwork, ...]:
    """The non-public addresses a feed URL may name directly: the allowlist's IP addresses and networks
    ("10.1.2.3", "10.1.2.3:8080", "[fd00::1]:8443", "10.0.0.0/8"). A URL with a host name never reaches one,
    because whoever runs the name's DNS decides where it points: listing a competitor's host must not let it
    point at 169.254.169.254 or at an internal address listed for another feed."""
    return tuple(n for n in _networks_of(allowlist) if n is not None)


def _private_hint(address: object) -> str:
    return (
        f"feeds may not reach internal networks; if this feed really is served from one, write its address "
        f"'{address}' in the feed URL and name it (or its network, e.g. 10.0.0.0/8) in ppis.feed_host_allowlist; "
        "a host name never reaches an internal address. Otherwise fix the feed URL"
    )


def check_feed_url(url: str, allowlist: list[str]) -> None:
    """Refuse what the URL alone shows is not allowed (PermanentFeedError).

    That is: non-http(s) URLs, hosts outside a non-empty ``allowlist``, and IP addresses that are not public
    unless the allowlist names them. A host name's addresses are checked when the feed is fetched.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        got = f"'{scheme}://'" if scheme else "no scheme"
        raise PermanentFeedError(
            f"feed URL uses {got}; only http:// and https:// are collected",
            hint="point the Competitor Feed block at the competitor's http(s) endpoint",
        )
    if not parts.hostname:
        raise PermanentFeedError(
            "feed URL has no host", hint="write a full URL such as https://feeds.example.com/prices"
        )
    if host_is_allowlisted(url, allowlist):
        return
    if allowlist:
        allowed = {entry.strip().lower() for entry in allowlist}
        raise PermanentFeedError(
            f"feed host '{_host(url)}' is not in the feed host allowlist",
            hint=f"add it to ppis.feed_host_allowlist (now: {', '.join(sorted(allowed))}) or fix the feed URL",
        )
    address = literal_address(parts.hostname)
    kind = non_public_kind(address) if address is not None else None
    if kind:
        raise PermanentFeedError(f"feed host '{_host(url)}' is a {kind} address", hint=_private_hint(address))
