"""Hostile competitor feeds: bodies too big to hold, answers too slow to wait for, addresses a feed may not reach.

Every feed here is a real loopback server (``tests.http_fixtures`` for canned answers, ``ScriptedServer`` below for
answers with their own timing) and the fetch is the real httpx client.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
import tracemalloc
import uuid
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import cache

import httpx
import pandas as pd
import pytest
from sqlalchemy import select

from framework2.blocks import CompetitorFeed
from framework2.config import PricingSettings, get_settings
from framework2.tasks.feeds import (
    MalformedFeedError,
    PermanentFeedError,
    TransientFeedError,
    check_feed_url,
    collect_all,
    fetch_feed,
)
from framework2.tasks.http_fetch import plan_targets
from tests.http_fixtures import LoopbackHTTPServer, Reply
from tests.http_fixtures import http_server as http_server_fixture  # noqa: F401  (registers `http_server`)

LOOPBACK = ["127.0.0.1"]
MIB = 1024 * 1024


def make_feed(url: str, **overrides: object) -> CompetitorFeed:
    fields: dict[str, object] = {"competitor": "acme", "url": url}
    fields.update(overrides)
    return CompetitorFeed(**fields)


async def fetch(feed: CompetitorFeed, allowlist: list[str] = LOOPBACK, max_bytes: int | None = MIB) -> bytes:
    async with httpx.AsyncClient() as client:
        return await fetch_feed(client, feed, allowlist, max_bytes=max_bytes)


@cache
def gzip_bomb(mib: int) -> bytes:
    """A valid gzip document of ``mib`` MiB of zeros, about 1000 times smaller, built in a fraction of a second.

    Compressing the zeros directly takes seconds; after a full flush the compressor starts afresh, so every
    further MiB compresses to the same bytes and can be repeated.
    """
    zeros = bytes(MIB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeat = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = compressor.flush()[:-8]  # the gzip trailer (CRC, size) is rewritten for the whole document
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    size = (mib * MIB) & 0xFFFFFFFF
    return first + repeat * (mib - 1) + end + crc.to_bytes(4, "little") + size.to_bytes(4, "little")


# --- a server whose answers have their own timing ----------------------------------------------------------------

Script = Callable[[socket.socket, threading.Event], None]


class ScriptedServer:
    """A loopback TCP server answering each connection by running ``script(conn, closing)``.

    ``closing`` is set when the test ends, so a script that drips or stalls waits on it and stops promptly.
    ``sent`` counts the body bytes scripts report with ``count``.
    """

    def __init__(self, script: Script) -> None:
        self._script = script
        self._closing = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self.sent = 0

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._listener.getsockname()[1])

    def url_for(self, path: str) -> str:
        """Absolute URL of ``path`` on this server."""
        return f"http://127.0.0.1:{self.port}{path}"

    def count(self, n: int) -> None:
        """Record ``n`` more body bytes sent."""
        self.sent += n

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                data = conn.recv(65536)
                if not data:
                    return
                request += data
            # An OSError is the client giving up, which is what most of these tests expect.
            with contextlib.suppress(OSError):
                self._script(conn, self._closing)

    def __enter__(self) -> ScriptedServer:
        self._accepting.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._closing.set()
        self._accepting.join(timeout=5)
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)


StartServer = Callable[[Script], ScriptedServer]


@pytest.fixture
def scripted() -> Iterator[StartServer]:
    """Start ``ScriptedServer``s for the test; all are closed at its end."""
    servers: list[ScriptedServer] = []

    def start(script: Script) -> ScriptedServer:
        server = ScriptedServer(script).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def drip(body: bytes, every: float, length: int | None = None) -> Script:
    """Send headers at once, then ``body`` one byte every ``every`` seconds."""

    def script(conn: socket.socket, closing: threading.Event) -> None:
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {length or len(body)}\r\n\r\n".encode())
        for byte in body:
            if closing.wait(every):
                return
            conn.sendall(bytes([byte]))

    return script


# --- 1. a body too big to hold ----------------------------------------------------------------------------------


async def test_gzip_bomb_feed_is_cut_off_at_the_byte_cap(http_server: LoopbackHTTPServer):
    bomb = gzip_bomb(256)  # 256 KiB on the wire, 256 MiB decompressed
    http_server.route("/offers", Reply(200, bomb, headers={"Content-Encoding": "gzip"}))
    feed = make_feed(http_server.url_for("/offers"))

    tracemalloc.start()
    try:
        with pytest.raises(PermanentFeedError) as caught:
            await fetch(feed, max_bytes=MIB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert not isinstance(caught.value, TransientFeedError)  # a bomb stays a bomb: not retried
    assert caught.value.message.startswith("feed 'acme' is larger than the 1 MiB limit (stopped after")
    assert "counted after decompression" in caught.value.message
    assert "ppis.feed_max_bytes (1048576 bytes)" in caught.value.hint
    # Inflated only as far as the cap allows: about the cap and one copy of it, not 256 MiB (nor the ~140 MB that
    # httpx's own decoding would hold, inflating a whole 64 KiB read at once).
    assert peak < 8 * MIB


async def test_fifty_megabyte_body_is_refused_by_its_content_length_at_the_default_cap(
    http_server: LoopbackHTTPServer,
):
    http_server.route("/offers", Reply(200, b"[" + b" " * (50 * MIB) + b"]"))
    feed = make_feed(http_server.url_for("/offers"))

    with pytest.raises(PermanentFeedError) as caught:
        await fetch(feed, max_bytes=None)  # the setting's default

    assert PricingSettings().feed_max_bytes == 10 * MIB
    assert caught.value.message == (
        f"feed 'acme' is larger than the 10 MiB limit (it declared Content-Length {50 * MIB + 2} bytes)"
    )
    assert "raise ppis.feed_max_bytes in framework2.toml" in caught.value.hint


async def test_body_without_content_length_is_cut_off_while_it_streams(scripted: StartServer):
    def chunked(conn: socket.socket, closing: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        piece = b" " * 65536
        for _ in range(1024):  # 64 MiB offered in all
            conn.sendall(b"10000\r\n" + piece + b"\r\n")
            server.count(len(piece))
        conn.sendall(b"0\r\n\r\n")

    server = scripted(chunked)

    with pytest.raises(PermanentFeedError, match=r"larger than the 1 MiB limit \(stopped after") as caught:
        await fetch(make_feed(server.url_for("/offers")), max_bytes=MIB)

    assert "ppis.feed_max_bytes" in caught.value.hint
    time.sleep(0.2)  # let the server notice the closed connection
    # Reading stopped at the cap: what got further sat in the kernel's socket buffers (a few MiB on loopback).
    assert server.sent < 16 * MIB


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip, gzip", zlib.compress(gzip_bomb(1), wbits=31)),  # stacked layers multiply the expansion
        ("br", b"\x0b\x02\x80[]\x03"),  # decoded by httpx only if brotli happens to be installed
    ],
    ids=["stacked-gzip", "brotli"],
)
async def test_stacked_or_unaccepted_content_encodings_are_refused(
    http_server: LoopbackHTTPServer, encoding: str, body: bytes
):
    http_server.route("/offers", Reply(200, body, headers={"Content-Encoding": encoding}))

    with pytest.raises(PermanentFeedError) as caught:
        await fetch(make_feed(http_server.url_for("/offers")))

    assert caught.value.message == f"feed 'acme' is sent with Content-Encoding '{encoding}', which is not accepted"
    assert http_server.requests[0].headers["accept-encoding"] == "gzip, deflate"


@pytest.mark.parametrize(
    "body",
    [
        b"\x1f\x8b\x08\x00 this is not deflate",
        zlib.compress(b'[{"sku": "A1", "price": 9.5}]' * 100, wbits=31)[:60],
        # two gzip members: reading only the first would silently drop the second's rows
        zlib.compress(b'[{"sku": "A1", "price": 9.5}]', wbits=31) + zlib.compress(b"[]", wbits=31),
        zlib.compress(b'[{"sku": "A1", "price": 9.5}]', wbits=31) + b"trailing bytes",
    ],
    ids=["garbage", "cut-short", "two-members", "trailing-bytes"],
)
async def test_corrupt_or_cut_short_gzip_body_is_a_malformed_feed(http_server: LoopbackHTTPServer, body: bytes):
    http_server.route("/offers", Reply(200, body, headers={"Content-Encoding": "gzip"}))

    with pytest.raises(MalformedFeedError, match="does not decompress as its Content-Encoding 'gzip' says"):
        await fetch(make_feed(http_server.url_for("/offers")))


DOCUMENT = b'[{"sku": "A1", "price": 9.5}]'


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", zlib.compress(DOCUMENT, wbits=31)),
        ("deflate", zlib.compress(DOCUMENT)),  # zlib-wrapped, as the standard says
        ("deflate", zlib.compress(DOCUMENT, wbits=-15)),  # raw, as some servers send it
        ("identity", DOCUMENT),
    ],
    ids=["gzip", "deflate-zlib", "deflate-raw", "identity"],
)
async def test_feed_exactly_at_the_cap_is_read_decompressed(
    http_server: LoopbackHTTPServer, encoding: str, body: bytes
):
    http_server.route("/offers", Reply(200, body, headers={"Content-Encoding": encoding}))

    assert await fetch(make_feed(http_server.url_for("/offers")), max_bytes=len(DOCUMENT)) == DOCUMENT


# --- 2. an answer too slow to wait for --------------------------------------------------------------------------


async def test_dripping_feed_is_cut_off_at_its_total_deadline(scripted: StartServer):
    # Each byte comes well within a per-read timeout; the whole body would take 8 s.
    server = scripted(drip(b"[" + b" " * 38 + b"]", every=0.2))
    feed = make_feed(server.url_for("/offers"), timeout_seconds=1)

    started = time.monotonic()
    with pytest.raises(TransientFeedError) as caught:
        await fetch(feed)
    took = time.monotonic() - started

    # the drip alone would take 8 s; the margin is for a loaded machine, not a speed target
    assert 1 <= took < 4
    assert caught.value.message == "feed 'acme' timed out after 1.0 s"
    assert caught.value.hint.startswith(f"127.0.0.1:{server.port} did not send the whole feed in time (got ")
    assert "bytes of the body" in caught.value.hint and "raise timeout_seconds" in caught.value.hint


async def test_feed_that_sends_headers_then_stalls_is_cut_off_at_the_deadline(scripted: StartServer):
    def stall(conn: socket.socket, closing: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n[")
        closing.wait()

    server = scripted(stall)

    started = time.monotonic()
    with pytest.raises(TransientFeedError, match=r"timed out after 0\.5 s"):
        await fetch(make_feed(server.url_for("/offers"), timeout_seconds=0.5))

    assert time.monotonic() - started < 3  # bounded, with room for a loaded machine


async def test_feed_that_never_answers_is_cut_off_at_the_deadline(scripted: StartServer):
    server = scripted(lambda conn, closing: closing.wait())

    started = time.monotonic()
    with pytest.raises(TransientFeedError, match=r"timed out after 0\.5 s \(127\.0\.0\.1:\d+ did not send"):
        await fetch(make_feed(server.url_for("/offers"), timeout_seconds=0.5))

    assert time.monotonic() - started < 3  # bounded, with room for a loaded machine


# --- 3. addresses a feed may not reach --------------------------------------------------------------------------


async def test_feed_on_loopback_is_refused_unless_the_allowlist_names_its_host(http_server: LoopbackHTTPServer):
    http_server.route("/offers", Reply(200, []))
    feed = make_feed(http_server.url_for("/offers"))

    with pytest.raises(PermanentFeedError) as caught:
        await fetch(feed, allowlist=[])
    assert http_server.requests == []  # refused before connecting
    assert caught.value.message == f"feed 'acme': 127.0.0.1:{http_server.port} is at 127.0.0.1, a loopback address"
    assert "name it (or its network, e.g. 10.0.0.0/8) in ppis.feed_host_allowlist" in caught.value.hint

    assert await fetch(feed, allowlist=["127.0.0.1"]) == b"[]"
    assert await fetch(feed, allowlist=[f"127.0.0.1:{http_server.port}"]) == b"[]"


@pytest.mark.parametrize("host", ["localhost", "2130706433", "127.1"])
async def test_host_names_resolving_to_loopback_are_refused(http_server: LoopbackHTTPServer, host: str):
    http_server.route("/offers", Reply(200, []))
    feed = make_feed(f"http://{host}:{http_server.port}/offers")

    with pytest.raises(PermanentFeedError, match=r"a loopback address") as caught:
        await fetch(feed, allowlist=[])

    assert http_server.requests == []
    assert "write its address '127.0.0.1' in the feed URL" in caught.value.hint  # never the name


async def test_a_host_name_in_the_allowlist_never_waives_the_address_check(http_server: LoopbackHTTPServer):
    # Listing a competitor's host must not let its DNS point the fetch at an internal address.
    http_server.route("/offers", Reply(200, []))
    feed = make_feed(f"http://localhost:{http_server.port}/offers")

    with pytest.raises(PermanentFeedError, match="loopback"):
        await fetch(feed, allowlist=["localhost"])
    assert http_server.requests == []


@pytest.mark.parametrize("entry", ["127.0.0.1", "127.0.0.0/8", "{ip}:{port}"])
async def test_an_internal_feed_is_reached_when_its_url_and_the_allowlist_name_its_address(
    http_server: LoopbackHTTPServer, entry: str
):
    http_server.route("/offers", Reply(200, []))
    named = entry.format(ip="127.0.0.1", port=http_server.port)

    assert await fetch(make_feed(f"http://127.0.0.1:{http_server.port}/offers"), allowlist=[named]) == b"[]"
    # the same address reached through a name, even one the allowlist also lists, is refused: the name's DNS
    # could be anyone's
    with pytest.raises(PermanentFeedError, match="loopback"):
        await fetch(make_feed(f"http://localhost:{http_server.port}/offers"), allowlist=["localhost", named])


def test_an_allowlisted_host_with_its_schemes_port_matches_a_url_without_one():
    check_feed_url("https://feeds.example.com/x", ["feeds.example.com:443"])
    with pytest.raises(PermanentFeedError, match="not in the feed host allowlist"):
        check_feed_url("https://feeds.example.com:8443/x", ["feeds.example.com:443"])


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),  # the cloud metadata service
        ("http://10.1.2.3/feed", "private"),
        ("http://192.168.0.10:8080/feed", "private"),
        ("http://172.16.5.4/feed", "private"),
        ("http://[::1]/feed", "loopback"),
        ("http://[::ffff:127.0.0.1]/feed", "loopback"),  # IPv4 in IPv6 clothing
        ("http://[64:ff9b::a00:1]/feed", "private"),  # NAT64 of 10.0.0.1
        ("http://[fe80::1]/feed", "link-local"),
        ("http://[fd00::5]/feed", "private"),
        ("http://0.0.0.0:8000/feed", "unspecified"),
        ("http://224.0.0.1/feed", "multicast"),
        ("http://100.64.0.1/feed", "non-public"),  # carrier-grade NAT
    ],
)
def test_non_public_ip_addresses_are_refused_before_any_request(url: str, kind: str):
    with pytest.raises(PermanentFeedError) as caught:
        check_feed_url(url, [])

    assert caught.value.message.endswith(f"is a {kind} address")
    assert "ppis.feed_host_allowlist" in caught.value.hint


def test_public_ip_address_and_host_names_pass_the_url_check():
    check_feed_url("http://93.184.216.34/feed", [])
    check_feed_url("https://[2606:4700::1111]/feed", [])
    check_feed_url("https://feeds.acme.example/prices", [])  # its addresses are checked when fetched


def test_plain_http_is_sent_to_the_checked_address_with_the_host_header_kept():
    addresses = [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("2606:2800:220:1::248")]

    pinned = plan_targets(httpx.URL("http://feeds.acme.example:8080/p?q=1"), addresses)
    kept = plan_targets(httpx.URL("https://feeds.acme.example/p"), addresses)

    assert [(str(url), host) for url, host in pinned] == [
        ("http://93.184.216.34:8080/p?q=1", "feeds.acme.example:8080"),
        ("http://[2606:2800:220:1::248]:8080/p?q=1", "feeds.acme.example:8080"),
    ]
    # https keeps the name: the certificate is checked against it, so a rebound address fails the handshake.
    assert [(str(url), host) for url, host in kept] == [("https://feeds.acme.example/p", None)]


# --- the limits come from settings, and a broken feed fails alone -------------------------------------------------


async def test_collect_all_takes_the_byte_cap_from_settings(
    http_server: LoopbackHTTPServer, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("FRAMEWORK2_PPIS__FEED_MAX_BYTES", "2048")
    get_settings.cache_clear()
    try:
        http_server.route("/big", Reply(200, [{"sku": f"S{i}", "price": 1.0} for i in range(200)]))
        http_server.route("/small", Reply(200, [{"sku": "A1", "price": 9.5}]))
        feeds = [
            make_feed(http_server.url_for("/big"), competitor="big"),
            make_feed(http_server.url_for("/small"), competitor="small"),
        ]

        big, small = await collect_all(feeds, allowlist=LOOPBACK)
    finally:
        get_settings.cache_clear()

    assert not big.ok and "2048 bytes limit" in big.reason and "ppis.feed_max_bytes" in big.reason
    assert small.ok


def seed_catalogue(n_skus: int = 20) -> pd.DataFrame:
    """A small valid catalogue with sales history in the configured store; returns the catalogue."""
    from framework2.sample.world import sample_market
    from framework2.store import pricing as pricing_store
    from framework2.store.engine import open_store

    engine = open_store()
    market = sample_market(n_skus=n_skus, seed=4)
    catalogue = market.catalogue.astype({"sku": str, "category": str})
    pricing_store.upsert_catalogue(engine, catalogue)
    pricing_store.replace_sales(engine, market.sales.astype({"sku": str}))
    return catalogue


def seed_good_snapshot(feed: str, competitor: str, catalogue: pd.DataFrame) -> None:
    """An hour-old successful collection of ``feed``, as an earlier run would have stored it."""
    from framework2.store import pricing as pricing_store
    from framework2.store.engine import open_store

    fetched_at = datetime.now(UTC) - timedelta(hours=1)
    offers = pd.DataFrame(
        {
            "competitor": competitor,
            "sku": catalogue["sku"].head(5),
            "price": catalogue["price"].head(5) * 1.05,
            "in_stock": True,
            "observed_at": pd.Timestamp(fetched_at),
        }
    )
    pricing_store.save_snapshot(
        open_store(), run_id=None, feed=feed, competitor=competitor, fetched_at=fetched_at, status="ok", offers=offers
    )


@pytest.mark.integration
def test_hostile_feeds_fail_alone_with_their_limit_named_and_the_pricing_run_goes_on(
    prefect_server: str,
    store_url: str,
    http_server: LoopbackHTTPServer,
    scripted: StartServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from framework2.flows.pricing import hourly_pricing
    from framework2.store.engine import open_store, session_scope
    from framework2.store.models import FeedSnapshot

    monkeypatch.setenv("FRAMEWORK2_PPIS__FEED_RETRIES", "0")
    monkeypatch.setenv("FRAMEWORK2_PPIS__FEED_MAX_BYTES", str(MIB))
    monkeypatch.setenv("FRAMEWORK2_PPIS__FEED_HOST_ALLOWLIST", '["127.0.0.1"]')  # the test servers' host
    get_settings.cache_clear()
    catalogue = seed_catalogue()
    offers = [{"sku": sku, "price": round(price * 0.95, 2)} for sku, price in catalogue[["sku", "price"]].values]
    http_server.route("/good", Reply(200, offers))
    http_server.route("/bomb", Reply(200, gzip_bomb(64), headers={"Content-Encoding": "gzip"}))
    dripping = scripted(drip(b"[" + b" " * 38 + b"]", every=0.2))
    tag = uuid.uuid4().hex[:8]
    good, bomb, slow = f"good-{tag}", f"bomb-{tag}", f"drip-{tag}"
    CompetitorFeed(competitor="acme", url=http_server.url_for("/good")).save(good)
    CompetitorFeed(competitor="bombs", url=http_server.url_for("/bomb")).save(bomb)
    CompetitorFeed(competitor="drips", url=dripping.url_for("/offers"), timeout_seconds=1).save(slow)
    seed_good_snapshot(bomb, "bombs", catalogue)  # so the bomb's feed can fall back to it

    result = hourly_pricing(feeds=[good, bomb, slow], approval_wait_seconds=0)

    assert result.status == "completed"
    assert result.metrics["feeds"] == {good: "fresh", bomb: "stale", slow: "unavailable"}
    with session_scope(open_store()) as session:
        failed = session.scalars(
            select(FeedSnapshot).where(FeedSnapshot.run_id == result.run_id, FeedSnapshot.status == "failed")
        ).all()
        reasons = {snapshot.feed: snapshot.reason or "" for snapshot in failed}
    assert reasons[bomb].startswith(f"feed '{bomb}' is larger than the 1 MiB limit (stopped after")
    assert "raise ppis.feed_max_bytes" in reasons[bomb]
    assert reasons[slow].startswith(f"feed '{slow}' timed out after 1.0 s")
    assert "raise timeout_seconds" in reasons[slow]
