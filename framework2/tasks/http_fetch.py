"""Bounded HTTP GET for documents we do not control: a byte cap, a wall-clock deadline, public addresses only.

httpx alone bounds none of these. Its timeouts apply to each network read, so a server dripping a byte every
half second never trips them; ``response.content`` decompresses the whole body in memory, so 1 MB of gzip can
become 1 GiB; and it connects wherever the host name points, loopback and the cloud metadata address included.

``bounded_get`` therefore

- streams the body and counts bytes after decompression, stopping past ``max_bytes`` (and refusing up front a
  Content-Length above it). It decompresses itself, with zlib's output limit, instead of letting httpx do it:
  httpx inflates each 64 KiB network read in one go, up to ~64 MiB from gzip, which measured a 140 MB peak
  under a 1 MiB cap. Only one layer of gzip or deflate is accepted;
- puts one deadline over everything (name resolution, connect, headers, body), and also checks it between
  body chunks;
- resolves the host once and refuses it when any of its addresses is not a public one (private, loopback,
  link-local, reserved, multicast, unspecified, shared). The only exception is a URL whose host is an IP
  address inside one of the ``private_allowed`` networks: a host name never reaches an internal address,
  since its owner can point it anywhere. For http:// the request
  then goes to the checked address, with the Host header kept, so a DNS answer that changes between the check
  and the connect (DNS rebinding) cannot move it. For https:// httpx resolves again, but the certificate is
  verified against the host name, so a rebound connection fails its handshake before any request is sent.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Content encodings a body may come in (besides none), one layer at most.
ACCEPTED_ENCODINGS = ("gzip", "deflate")
# The NAT64 well-known prefix embeds an IPv4 address; judge that address, not the prefix.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class FetchError(Exception):
    """The fetch was stopped by a limit or the address policy, not by the server's answer."""


class BodyTooLarge(FetchError):
    """The body (after decompression) or its declared Content-Length is above the byte cap."""

    def __init__(self, limit: int, received: int, declared: int | None = None) -> None:
        super().__init__(f"body larger than {limit} bytes")
        self.limit, self.received, self.declared = limit, received, declared


class DeadlineExceeded(FetchError):
    """The whole request (resolve, connect, headers, body) took longer than its deadline."""

    def __init__(self, deadline: float, received: int) -> None:
        super().__init__(f"not done within {deadline} s")
        self.deadline, self.received = deadline, received


class UnsupportedEncoding(FetchError):
    """The body is in a Content-Encoding other than one layer of gzip or deflate."""

    def __init__(self, encoding: str) -> None:
        super().__init__(f"unsupported Content-Encoding {encoding!r}")
        self.encoding = encoding


class CorruptBody(FetchError):
    """The body does not decompress as its Content-Encoding says."""

    def __init__(self, encoding: str, reason: str) -> None:
        super().__init__(f"body is not valid {encoding}: {reason}")
        self.encoding, self.reason = encoding, reason


class BlockedAddress(FetchError):
    """The host is, or resolves to, an address that is not public."""

    def __init__(self, host: str, address: IPAddress, kind: str) -> None:
        super().__init__(f"{host} is at {address}, a {kind} address")
        self.host, self.address, self.kind = host, address, kind


class ResolutionFailed(FetchError):
    """The host name could not be resolved."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host} could not be resolved: {reason}")
        self.host, self.reason = host, reason


@dataclass(frozen=True)
class BoundedResponse:
    """Status, headers and body of a bounded GET; the body is read only for a 2xx answer."""

    status_code: int
    reason_phrase: str
    headers: httpx.Headers
    content: bytes


def literal_address(host: str) -> IPAddress | None:
    """The IP address ``host`` spells (brackets allowed), or None for a host name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def non_public_kind(address: IPAddress) -> str | None:
    """Why ``address`` is not a public one ("loopback", "private", ...), or None if it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv6 address that carries an IPv4 one reaches that IPv4 address; judge it instead.
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address in _NAT64:
            address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        elif address.sixtofour is not None:
            address = address.sixtofour
    for kind, flag in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if flag:
            return kind
    # Left: ranges such as 100.64.0.0/10 (carrier-grade NAT) that are neither private nor routable.
    return None if address.is_global else "non-public"


async def _resolve(host: str, port: int) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ResolutionFailed(host, str(getattr(exc, "strerror", None) or exc)) from None
    # getaddrinfo's order is the system's preference; keep it, without repeats.
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


def plan_targets(url: httpx.URL, addresses: list[IPAddress]) -> list[tuple[httpx.URL, str | None]]:
    """Where to send the request for ``url`` whose host resolved to ``addresses``: (URL, Host header or None).

    http:// goes to each checked address in turn, naming the host in the Host header (pinned: no second
    resolution). https:// keeps the URL: TLS verifies the certificate against the host name, and the same name
    must be sent for SNI, so httpx resolves it again.
    """
    if url.scheme == "https" or not addresses:
        return [(url, None)]
    host_header = url.netloc.decode("ascii")
    return [(url.copy_with(host=str(address)), host_header) for address in addresses]


async def _targets(url: httpx.URL, private_allowed: tuple[IPNetwork, ...]) -> list[tuple[httpx.URL, str | None]]:
    literal = literal_address(url.host)
    if literal is not None:
        addresses = [literal]
    else:
        addresses = await _resolve(url.raw_host.decode("ascii"), url.port or (443 if url.scheme == "https" else 80))
    for address in addresses:
        # Every address, not just the first: the connection could use any of them.
        kind = non_public_kind(address)
        # Waived only for a URL that names the address itself: a host name's owner decides where it points, so
        # no name ever reaches an internal address, whatever else the allowlist holds.
        waived = literal is not None and any(address in network for network in private_allowed)
        if kind and not waived:
            raise BlockedAddress(url.host, address, kind)
    return [(url, None)] if literal is not None else plan_targets(url, addresses)


def _encoding(headers: httpx.Headers, max_bytes: int) -> str:
    """The body's one content encoding ("" for none), after refusing a declared length above ``max_bytes``."""
    layers = [value.strip().lower() for value in headers.get_list("content-encoding", split_commas=True)]
    layers = [layer for layer in layers if layer and layer != "identity"]
    # Stacked layers multiply each other's expansion; other encodings we did not ask for.
    if len(layers) > 1 or (layers and layers[0] not in ACCEPTED_ENCODINGS):
        raise UnsupportedEncoding(", ".join(layers))
    declared = headers.get("content-length", "").strip()
    # Only a plain body's length is its size; a small compressed one can be longer than what it inflates to.
    if not layers and declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge(max_bytes, 0, int(declared))
    return layers[0] if layers else ""


class _Inflater:
    """Decompresses a body chunk by chunk, never producing more than the room left under the cap."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        # deflate is meant to be zlib-wrapped, but some servers send it raw; the first chunk tells.
        wbits = zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS
        self._zlib = zlib.decompressobj(wbits) if encoding else None
        self._first = True

    def inflate(self, data: bytes, room: int) -> bytes:
        """Up to ``room`` bytes of output for ``data``; exactly ``room`` means there was more."""
        if self._zlib is None:
            return data[:room]
        first, self._first = self._first, False
        try:
            return self._zlib.decompress(data, room)
        except zlib.error as exc:
            if first and self.encoding == "deflate":
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                return self.inflate(data, room)
            raise CorruptBody(self.encoding, str(exc)) from None

    def finish(self) -> None:
        """Refuse a compressed body that stopped before its end, or that goes on after it (a second gzip member
        or trailing bytes): either way a CSV would silently lose rows."""
        if self._zlib is not None and not self._zlib.eof:
            raise CorruptBody(self.encoding, "the compressed data ends early")
        if self._zlib is not None and self._zlib.unused_data:
            raise CorruptBody(self.encoding, "more data follows the end of the compressed stream")


@dataclass
class _Progress:
    """Body bytes received so far (after decompression), for the deadline's message."""

    received: int = 0


async def _get_once(
    client: httpx.AsyncClient,
    url: httpx.URL,
    headers: dict[str, str],
    max_bytes: int,
    deadline: float,
    progress: _Progress,
) -> BoundedResponse:
    loop = asyncio.get_running_loop()
    # httpx's own timeouts, per phase, never later than what is left of the deadline.
    timeout = httpx.Timeout(max(deadline - loop.time(), 0.001))
    async with client.stream("GET", url, headers=headers, timeout=timeout, follow_redirects=False) as response:
        if not 200 <= response.status_code < 300:
            return BoundedResponse(response.status_code, response.reason_phrase, response.headers, b"")
        inflater = _Inflater(_encoding(response.headers, max_bytes))
        body = bytearray()
        async for raw in response.aiter_raw():  # raw: the cap counts what the body inflates to, inflated here
            # One byte more than fits, to tell "exactly the cap" from "more than the cap".
            chunk = inflater.inflate(raw, max_bytes - len(body) + 1)
            progress.received += len(chunk)
            if len(body) + len(chunk) > max_bytes:
                raise BodyTooLarge(max_bytes, progress.received)
            body += chunk
            if loop.time() > deadline:
                # Between chunks, so a steady drip stops at the deadline even if a read never waits long.
                raise TimeoutError
        inflater.finish()
        return BoundedResponse(response.status_code, response.reason_phrase, response.headers, bytes(body))


async def bounded_get(
    client: httpx.AsyncClient,
    url: str,
    *,
    max_bytes: int,
    deadline_seconds: float,
    headers: Mapping[str, str] | None = None,
    private_allowed: tuple[IPNetwork, ...] = (),
) -> BoundedResponse:
    """GET ``url`` within ``deadline_seconds`` and ``max_bytes``; redirects are not followed.

    Raises a FetchError subclass when a limit, the address policy or a corrupt compressed body stops it; network
    and protocol failures are httpx's own exceptions.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_seconds
    progress = _Progress()
    # Ask only for what _Inflater decodes (httpx would otherwise offer br/zstd whenever they are installed).
    sent = {"Accept-Encoding": ", ".join(ACCEPTED_ENCODINGS), **(headers or {})}
    try:
        async with asyncio.timeout_at(deadline):
            targets = await _targets(httpx.URL(url), private_allowed)
            failure: httpx.ConnectError | None = None
            for target, host_header in targets:
                request_headers = sent if host_header is None else {**sent, "Host": host_header}
                try:
                    return await _get_once(client, target, request_headers, max_bytes, deadline, progress)
                except httpx.ConnectError as exc:
                    # The host's next address may be up; the deadline still bounds the whole loop.
                    failure = exc
            assert failure is not None  # targets is never empty
            raise failure
    except TimeoutError:
        raise DeadlineExceeded(deadline_seconds, progress.received) from None


__all__ = [
    "ACCEPTED_ENCODINGS",
    "BlockedAddress",
    "BodyTooLarge",
    "BoundedResponse",
    "CorruptBody",
    "DeadlineExceeded",
    "FetchError",
    "ResolutionFailed",
    "UnsupportedEncoding",
    "bounded_get",
    "literal_address",
    "non_public_kind",
    "plan_targets",
]
