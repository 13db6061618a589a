"""Competitor feed collection against a real loopback HTTP server with the real httpx client."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import httpx
import pandas as pd
import pytest
from prefect import flow
from pydantic import ValidationError

from framework2.blocks import CompetitorFeed
from framework2.errors import FeedError
from framework2.tasks.feeds import (
    OFFER_COLUMNS,
    FeedCollection,
    MalformedFeedError,
    PermanentFeedError,
    TransientFeedError,
    check_feed_url,
    collect_all,
    collect_feed,
    fetch_feed,
    parse_feed,
    validate_offers,
)
from tests.http_fixtures import LoopbackHTTPServer, Reply
from tests.http_fixtures import http_server as http_server_fixture  # noqa: F401  (registers `http_server`)

TOKEN = "Bearer s3cr3t-token-value"
FETCHED_AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

NESTED_JSON = {
    "meta": {"generated": "2024-05-01"},
    "data": {
        "offers": [
            {"article": "A1", "amount": "12.50", "available": "yes", "seen": "2024-05-01T10:00:00+02:00"},
            {"article": "B2", "amount": 7, "available": False, "seen": "2024-05-01T09:30:00Z"},
            {"article": "C3", "amount": 3.25},
        ]
    },
}
CSV_BODY = "sku,price,in_stock\nA1,12.50,true\nB2,7,false\nC3,not-a-price,\n"


def make_feed(server: LoopbackHTTPServer, path: str = "/offers", **overrides: object) -> CompetitorFeed:
    fields: dict[str, object] = {"competitor": "acme", "url": server.url_for(path)}
    fields.update(overrides)
    return CompetitorFeed(**fields)


# The loopback test servers are on a private address, which a feed may reach only when the allowlist names it.
LOOPBACK = ["127.0.0.1"]


async def fetch(feed: CompetitorFeed) -> bytes:
    async with httpx.AsyncClient() as client:
        return await fetch_feed(client, feed, LOOPBACK)


# --- fetch and parse -------------------------------------------------------------------------------


async def test_json_feed_with_records_path_and_field_mapping_is_parsed(http_server: LoopbackHTTPServer):
    http_server.route("/offers", Reply(200, NESTED_JSON))
    feed = make_feed(
        http_server,
        records_path="data.offers",
        field_mapping={"sku": "article", "price": "amount", "in_stock": "available", "observed_at": "seen"},
        auth_token=TOKEN,
    )

    offers = parse_feed(feed, await fetch(feed), FETCHED_AT)

    assert list(offers.columns) == OFFER_COLUMNS
    assert offers["sku"].tolist() == ["A1", "B2", "C3"]
    assert offers["price"].tolist() == [12.5, 7.0, 3.25]
    assert offers["in_stock"].tolist() == [True, False, True]  # C3 has no stock field: in stock
    assert str(offers["observed_at"].dtype) == "datetime64[ns, UTC]"
    assert offers["observed_at"].tolist() == [
        pd.Timestamp("2024-05-01T08:00:00Z"),
        pd.Timestamp("2024-05-01T09:30:00Z"),
        pd.Timestamp(FETCHED_AT),  # no timestamp: the fetch time
    ]
    assert set(offers["competitor"]) == {"acme"} and set(offers["feed"]) == {"acme"}


async def test_csv_feed_is_parsed_with_row_problems_kept_as_nan(http_server: LoopbackHTTPServer):
    http_server.route("/offers.csv", Reply(200, CSV_BODY, headers={"Content-Type": "text/csv"}))
    feed = make_feed(http_server, "/offers.csv", format="csv")

    offers = parse_feed(feed, await fetch(feed), FETCHED_AT)

    assert offers["sku"].tolist() == ["A1", "B2", "C3"]
    assert offers["price"].iloc[:2].tolist() == [12.5, 7.0]
    assert math.isnan(offers["price"].iloc[2])  # unparseable price is a row problem, not an error
    assert offers["in_stock"].tolist() == [True, False, True]
    assert (offers["observed_at"] == pd.Timestamp(FETCHED_AT)).all()


async def test_auth_header_is_sent_and_token_never_leaks(http_server: LoopbackHTTPServer):
    http_server.route("/offers", Reply(200, []))
    http_server.route("/denied", Reply(401, "bad token " + TOKEN))  # even if the server echoes it
    http_server.route("/slow", Reply(200, [], delay=2))
    feed = make_feed(http_server, auth_header="X-Api-Key", auth_token=TOKEN, timeout_seconds=0.2)

    await fetch(feed)
    [request] = http_server.requests_to("/offers")
    assert request.headers["x-api-key"] == TOKEN

    errors = []
    for path in ("/denied", "/slow"):
        with pytest.raises(FeedError) as caught:
            await fetch(feed.model_copy(update={"url": http_server.url_for(path)}))
        errors.append(caught.value)
    with pytest.raises(PermanentFeedError) as caught:
        # A pasted token with a line break cannot be sent; the error must not quote it either.
        await fetch(make_feed(http_server, auth_token=TOKEN + "\n"))
    errors.append(caught.value)

    secret = TOKEN.split()[-1]
    for text in [repr(feed), str(feed), feed.model_dump_json()] + [f"{e!s} {e!r}" for e in errors]:
        assert secret not in text


async def test_feed_timeout_is_transient_and_names_the_feed(http_server: LoopbackHTTPServer):
    http_server.route("/offers", Reply(200, [], delay=2))
    feed = make_feed(http_server, timeout_seconds=0.2)

    with pytest.raises(TransientFeedError) as caught:
        await fetch(feed)

    assert caught.value.message == "feed 'acme' timed out after 0.2 s"
    assert "timeout_seconds" in caught.value.hint


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_server_errors_and_rate_limits_are_transient(http_server: LoopbackHTTPServer, status: int):
    http_server.route("/offers", Reply(status, "busy", headers={"Retry-After": "30"}))

    with pytest.raises(TransientFeedError, match=f"feed 'acme' answered HTTP {status}"):
        await fetch(make_feed(http_server))


@pytest.mark.parametrize(("status", "hint_word"), [(404, "URL"), (401, "auth_token"), (403, "auth_token")])
async def test_client_errors_are_permanent_with_a_hint(http_server: LoopbackHTTPServer, status: int, hint_word: str):
    http_server.route("/offers", Reply(status, "no"))

    with pytest.raises(PermanentFeedError) as caught:
        await fetch(make_feed(http_server))

    assert not isinstance(caught.value, TransientFeedError)
    assert f"feed 'acme' answered HTTP {status}" in caught.value.message
    assert hint_word in caught.value.hint


async def test_redirect_is_not_followed(http_server: LoopbackHTTPServer):
    http_server.route("/offers", Reply(302, headers={"Location": "http://elsewhere.example/x"}))

    with pytest.raises(PermanentFeedError, match="redirect to elsewhere.example"):
        await fetch(make_feed(http_server))
    assert len(http_server.requests) == 1


async def test_unreachable_host_is_transient():
    with LoopbackHTTPServer() as gone:
        url = gone.url_for("/offers")  # a port nothing listens on once the server is closed
    feed = CompetitorFeed(competitor="acme", url=url)

    with pytest.raises(TransientFeedError, match="feed 'acme' could not be reached at 127.0.0.1"):
        await fetch(feed)


@pytest.mark.parametrize(
    ("settings", "body", "expected"),
    [
        ({}, b"{not json", "feed 'acme' is not valid JSON: Expecting property name"),
        ({}, b'{"offers": []}', "the document is a JSON dict with keys offers, not a list of offers"),
        (
            {"records_path": "data.offers"},
            b'{"data": {"items": []}}',
            "records_path 'data.offers' not found: no key 'offers' at data (found: items)",
        ),
        ({"records_path": "data"}, b'{"data": {"a": 1}}', "records_path 'data' is a JSON dict"),
        (
            {"field_mapping": {"price": "amount"}},
            b'[{"sku": "A1", "cost": 3}]',
            "field(s) 'amount' (our price) not found; fields present: sku, cost",
        ),
        ({"format": "csv"}, b"sku,cost\nA1,3\n", "field(s) 'price' not found; fields present: sku, cost"),
        ({"format": "csv"}, b'sku,price\nA1,"3\n', "feed 'acme' is not valid CSV"),
        ({}, b"", "feed 'acme' returned an empty body"),
        ({"format": "csv"}, b"  \n", "feed 'acme' returned an empty body"),
    ],
)
async def test_malformed_documents_are_permanent_with_a_clear_message(
    http_server: LoopbackHTTPServer, settings: dict[str, object], body: bytes, expected: str
):
    http_server.route("/offers", Reply(200, body))
    feed = make_feed(http_server, **settings)

    with pytest.raises(MalformedFeedError) as caught:
        parse_feed(feed, await fetch(feed), FETCHED_AT)

    assert isinstance(caught.value, PermanentFeedError)
    assert expected in caught.value.message
    assert caught.value.hint


def test_row_level_values_are_normalised_not_rejected():
    feed = CompetitorFeed(competitor="acme", url="https://feeds.acme.example/x")
    body = (
        b'[{"sku": 101, "price": "$4.50", "in_stock": "sold out", "observed_at": "2024-05-01 08:00"},'
        b' {"sku": null, "price": true, "in_stock": 0, "observed_at": "yesterday"},'
        b' {"sku": " Z9 ", "price": "Infinity", "in_stock": "backorder", "observed_at": 1714550400}]'
    )

    offers = parse_feed(feed, body, FETCHED_AT)

    assert offers["sku"].tolist() == ["101", "", "Z9"]
    assert offers["price"].iloc[0] == 4.5 and offers["price"].iloc[1:].isna().all()
    assert offers["in_stock"].tolist() == [False, False, False]
    assert offers["observed_at"].iloc[0] == pd.Timestamp("2024-05-01T08:00Z")  # no offset: UTC
    assert offers["observed_at"].iloc[1] is pd.NaT
    assert offers["observed_at"].iloc[2] == pd.Timestamp("2024-05-01T08:00Z")  # epoch seconds


def test_empty_offer_list_gives_an_empty_typed_frame():
    feed = CompetitorFeed(competitor="acme", url="https://feeds.acme.example/x")

    offers = parse_feed(feed, b"[]", FETCHED_AT)

    assert offers.empty and list(offers.columns) == OFFER_COLUMNS
    assert str(offers["observed_at"].dtype) == "datetime64[ns, UTC]"


# --- URL policy and block validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allowlist", "expected"),
    [
        ("ftp://feeds.acme.example/prices.csv", [], "uses 'ftp://'"),
        ("file:///etc/passwd", [], "uses 'file://'"),
        ("feeds.acme.example/prices", [], "uses no scheme"),
        ("https://evil.example/prices", ["feeds.acme.example"], "'evil.example' is not in the feed host allowlist"),
        ("http://127.0.0.1:9000/x", ["127.0.0.1:8000"], "'127.0.0.1:9000' is not in the feed host allowlist"),
    ],
)
def test_feed_url_outside_policy_is_refused_with_a_hint(url: str, allowlist: list[str], expected: str):
    with pytest.raises(PermanentFeedError) as caught:
        check_feed_url(url, allowlist)

    assert expected in caught.value.message
    assert caught.value.hint


@pytest.mark.parametrize(
    ("url", "allowlist"),
    [
        ("https://feeds.acme.example/prices", []),
        ("https://FEEDS.acme.example/prices", ["feeds.acme.example"]),
        ("http://127.0.0.1:8000/x", ["127.0.0.1:8000"]),
        ("http://127.0.0.1:8000/x", ["127.0.0.1"]),
    ],
)
def test_feed_url_inside_policy_is_accepted(url: str, allowlist: list[str]):
    check_feed_url(url, allowlist)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"url": "ftp://feeds.acme.example/p"}, "must be an http:// or https:// URL"),
        ({"url": "file:///tmp/p.json"}, "must be an http:// or https:// URL"),
        ({"field_mapping": {"cost": "c"}}, "field_mapping has unknown key(s) cost"),
        ({"records_path": "data..offers"}, "has an empty segment"),
        ({"timeout_seconds": 0}, "greater than 0"),
    ],
)
def test_block_rejects_bad_settings_at_construction(fields: dict[str, object], expected: str):
    values: dict[str, object] = {"competitor": "acme", "url": "https://feeds.acme.example/p"}
    values.update(fields)

    with pytest.raises(ValidationError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        CompetitorFeed(**values)


def test_block_type_is_registered_for_the_ui():
    assert CompetitorFeed.get_block_type_slug() == "competitor-feed"
    assert CompetitorFeed.get_block_type_name() == "Competitor Feed"
    assert CompetitorFeed.get_description()
    assert CompetitorFeed._to_block_schema().fields["secret_fields"] == ["auth_token"]
    assert CompetitorFeed(competitor="a", url="https://x.example/", records_path="").records_path is None


# --- validation and quarantine ---------------------------------------------------------------------


def offers_frame(rows: list[tuple[str, str, float]], index: list[int] | None = None) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "competitor": [r[0] for r in rows],
            "sku": [r[1] for r in rows],
            "price": [r[2] for r in rows],
            "in_stock": True,
            "observed_at": pd.Timestamp(FETCHED_AT),
            "feed": [r[0] for r in rows],
        },
        index=index,
    )
    return frame


OUR_PRICES = pd.Series({"A1": 9.99, "B2": 20.0, "C3": 5.0})


def test_each_problem_row_is_quarantined_with_its_reason():
    offers = offers_frame(
        [
            ("acme", "A1", 9.49),  # valid
            ("acme", "B2", math.nan),
            ("acme", "B2", -3.0),
            ("acme", "B2", 0.0),
            ("acme", "A1", 950.0),
            ("acme", "C3", 0.40),
            ("acme", "X", 4.0),
            ("acme", "", 4.0),
            ("acme", "A1", 9.59),  # repeat of row 0
            ("globex", "A1", 9.59),  # same sku, other competitor: valid
            ("acme", "B2", 19.0),  # valid: the bad B2 rows above do not make this a duplicate
        ]
    )

    valid, quarantined = validate_offers(offers, OUR_PRICES, ratio_limit=10)

    assert len(valid) + len(quarantined) == len(offers)
    assert valid.index.tolist() == [0, 9, 10]
    assert quarantined["reason"].to_dict() == {
        1: "price is missing or not a number",
        2: "price must be positive (got -3.0)",
        3: "price must be positive (got 0.0)",
        4: "price 950.00 is more than 10x our price 9.99",
        5: "price 0.40 is less than 1/10 of our price 5.00",
        6: "unknown sku 'X' (not in the catalogue)",
        7: "sku is missing",
        8: f"duplicate of an earlier row for competitor 'acme' sku 'A1' at {pd.Timestamp(FETCHED_AT)}",
    }
    assert list(quarantined.columns) == [*offers.columns, "reason"]
    assert quarantined.loc[4, "price"] == 950.0  # original fields kept
    assert "reason" not in valid.columns


def test_validation_handles_repeated_index_labels_from_concatenated_feeds():
    first = offers_frame([("acme", "A1", 9.0), ("acme", "Q", 9.0)])
    second = offers_frame([("globex", "A1", 9.5), ("globex", "A1", 9.6)])
    offers = pd.concat([first, second])  # index 0, 1, 0, 1

    valid, quarantined = validate_offers(offers, OUR_PRICES, ratio_limit=10)

    assert valid["competitor"].tolist() == ["acme", "globex"]
    assert quarantined["reason"].tolist() == [
        "unknown sku 'Q' (not in the catalogue)",
        f"duplicate of an earlier row for competitor 'globex' sku 'A1' at {pd.Timestamp(FETCHED_AT)}",
    ]


def test_a_price_history_in_one_feed_is_not_a_duplicate():
    offers = offers_frame([("acme", "A1", 9.0), ("acme", "A1", 9.5)])
    offers["observed_at"] = [pd.Timestamp(FETCHED_AT) - pd.Timedelta(days=1), pd.Timestamp(FETCHED_AT)]

    valid, quarantined = validate_offers(offers, OUR_PRICES, ratio_limit=10)

    assert len(valid) == 2 and quarantined.empty


def test_validating_no_offers_gives_two_empty_frames():
    valid, quarantined = validate_offers(offers_frame([]), OUR_PRICES, ratio_limit=10)

    assert valid.empty and quarantined.empty and "reason" in quarantined.columns


# --- several feeds without Prefect ---------------------------------------------------------------


async def test_collect_all_reports_each_feed_separately(http_server: LoopbackHTTPServer):
    http_server.route("/good", Reply(200, [{"sku": "A1", "price": 9.5}]))
    http_server.route("/missing", Reply(404))
    http_server.route("/slow", Reply(200, [], delay=2))
    feeds = [
        make_feed(http_server, "/good", competitor="acme"),
        make_feed(http_server, "/missing", competitor="globex"),
        make_feed(http_server, "/slow", competitor="initech", timeout_seconds=0.2),
        CompetitorFeed(competitor="umbrella", url="https://outside.example/x"),
    ]

    outcomes = await collect_all(feeds, allowlist=LOOPBACK)

    assert [o.competitor for o in outcomes] == ["acme", "globex", "initech", "umbrella"]
    assert [o.ok for o in outcomes] == [True, False, False, False]
    assert outcomes[0].collection is not None and outcomes[0].collection.offers["sku"].tolist() == ["A1"]
    assert isinstance(outcomes[1].error, PermanentFeedError)
    assert isinstance(outcomes[2].error, TransientFeedError) and outcomes[2].transient
    assert "not in the feed host allowlist" in outcomes[3].reason
    assert len(http_server.requests) == 3  # the refused host was never contacted


# --- the Prefect task: retries only transient failures ----------------------------------------------


@pytest.fixture
def prefect_api(prefect_server: str) -> None:
    """The session's real Prefect server (tests/conftest.py)."""


async def test_task_retries_transient_errors_and_succeeds_on_third_attempt(
    prefect_api: None, http_server: LoopbackHTTPServer
):
    http_server.route("/offers", Reply(500), Reply(500), Reply(200, [{"sku": "A1", "price": 9.5}]))
    feed = make_feed(http_server)

    @flow
    async def collect() -> FeedCollection:
        return await collect_feed.with_options(retry_delay_seconds=0)(feed, LOOPBACK)

    collection = await collect()

    assert len(http_server.requests_to("/offers")) == 3
    assert collection.attempts == 3
    assert collection.offers["price"].tolist() == [9.5]
    assert collection.size_bytes == len(b'[{"sku": "A1", "price": 9.5}]')


@pytest.mark.parametrize(
    ("reply", "error"),
    [(Reply(200, b"<html>maintenance</html>"), MalformedFeedError), (Reply(404), PermanentFeedError)],
)
async def test_task_does_not_retry_permanent_errors(
    prefect_api: None, http_server: LoopbackHTTPServer, reply: Reply, error: type[Exception]
):
    http_server.route("/offers", reply)
    feed = make_feed(http_server)

    @flow
    async def collect() -> FeedCollection:
        return await collect_feed.with_options(retry_delay_seconds=0)(feed, LOOPBACK)

    with pytest.raises(error):
        await collect()
    assert len(http_server.requests_to("/offers")) == 1


# --- hostile documents: refused whole with a reason, never an exception that is not a FeedError --------------


def plain_feed(format: str = "json", **overrides: object) -> CompetitorFeed:
    return CompetitorFeed(competitor="acme", url="https://feeds.example.com/offers", format=format, **overrides)


def test_json_nested_past_what_python_reads_is_a_malformed_feed_not_a_recursion_error():
    body = ("[" * 200_000 + "]" * 200_000).encode()

    with pytest.raises(MalformedFeedError, match="nests JSON .* too deeply"):
        parse_feed(plain_feed(), body, FETCHED_AT)


def test_a_json_integer_of_thousands_of_digits_is_a_quarantined_offer_not_a_value_error():
    huge = "9" * 5000
    body = f'[{{"sku": "A1", "price": {huge}}}, {{"sku": {huge}, "price": 9.5}}, {{"sku": "B2", "price": 19}}]'

    offers = parse_feed(plain_feed(), body.encode(), FETCHED_AT)
    valid, quarantined = validate_offers(offers, OUR_PRICES, ratio_limit=10)

    assert valid["sku"].tolist() == ["B2"]
    assert quarantined["reason"].tolist()[0].startswith("price ")  # a 5000-digit price is far above ours
    assert quarantined["reason"].tolist()[1].startswith("unknown sku '999")
    assert len(quarantined["reason"].tolist()[1]) < 100  # the sku is quoted cut short


async def test_collect_all_reports_a_deeply_nested_feed_as_that_feeds_failure(http_server: LoopbackHTTPServer):
    http_server.route("/deep", Reply(200, ("[" * 100_000).encode()))
    http_server.route("/offers", Reply(200, body=[{"sku": "A1", "price": 9.5}]))

    outcomes = await collect_all([make_feed(http_server, "/deep"), make_feed(http_server)], LOOPBACK)

    assert isinstance(outcomes[0].error, MalformedFeedError)
    assert outcomes[1].collection is not None and outcomes[1].collection.offers["price"].tolist() == [9.5]


def test_a_nul_in_a_csv_feed_is_refused_not_read_as_a_shorter_price():
    body = b"sku,price\nA1,9.99\nB2,1\x0099\n"

    with pytest.raises(MalformedFeedError, match="line 3 contains a NUL"):
        parse_feed(plain_feed("csv"), body, FETCHED_AT)


def test_a_sku_with_a_control_character_is_quarantined_with_that_reason():
    offers = parse_feed(plain_feed(), b'[{"sku": "A1\\u0000", "price": 9.5}, {"sku": "A1", "price": 9.6}]', FETCHED_AT)

    valid, quarantined = validate_offers(offers, OUR_PRICES, ratio_limit=10)

    assert valid["price"].tolist() == [9.6]
    assert quarantined["reason"].tolist() == ["sku contains a control character (e.g. NUL or a line break)"]


@pytest.mark.parametrize(
    ("header", "said"),
    [
        (",".join(f"c{i}" for i in range(50_000)) + ",sku,price", "the header has 50,002 columns"),
        ("sku,price," + "x" * 30_000, "the header is 30,008 characters long"),
    ],
)
def test_a_csv_feed_with_a_header_too_wide_or_too_long_is_refused_before_pandas_reads_it(header: str, said: str):
    width = header.count(",") + 1
    body = (header + "\n" + ",".join(["1"] * width) + "\n").encode()

    with pytest.raises(MalformedFeedError, match=said) as caught:
        parse_feed(plain_feed("csv"), body, FETCHED_AT)
    assert len(str(caught.value)) < 300


def test_field_names_quoted_in_a_missing_field_error_are_cut_short():
    long_name = "f" * 100_000
    body = f'[{{"{long_name}": 1, "sku": "A1"}}]'.encode()

    with pytest.raises(MalformedFeedError, match="'price'") as caught:
        parse_feed(plain_feed(), body, FETCHED_AT)
    assert len(str(caught.value)) < 400


def test_a_lone_surrogate_in_a_json_sku_is_quarantined_and_storable():
    offers = parse_feed(plain_feed(), b'[{"sku": "\\ud800", "price": 9.5}, {"sku": "A1", "price": 9.6}]', FETCHED_AT)

    valid, quarantined = validate_offers(offers, OUR_PRICES, ratio_limit=10)

    assert valid["price"].tolist() == [9.6]
    [reason] = quarantined["reason"].tolist()
    assert reason.startswith("sku contains a control character")
    quarantined["sku"].iloc[0].encode("utf-8")  # a replacement character, not a surrogate


@pytest.mark.parametrize(
    "body",
    [
        b"sku,price,in_stock\rA1,1,no\rB2,2\r",  # a short row behind lone CR line ends
        b"sku,price\rA1,10,999\r",  # an extra cell
        b"sku,price," + b"," * 100_000 + b"\rA1,1\r",  # a header past the column limit
        b"sku ,sku,price\nA1,B2,1\n",  # the same column twice once trimmed
        b'sku,price\nA1,"9.99\n',  # a quote never closed
    ],
)
def test_a_csv_feed_that_csv_and_pandas_would_read_differently_is_refused_whole(body: bytes):
    with pytest.raises(MalformedFeedError, match="is not valid CSV"):
        parse_feed(plain_feed("csv"), body, FETCHED_AT)


def test_a_csv_feed_with_lone_cr_line_ends_is_read_like_any_other():
    offers = parse_feed(plain_feed("csv"), b"sku,price\rA1,9.99\rB2,19\r", FETCHED_AT)

    assert offers["sku"].tolist() == ["A1", "B2"] and offers["price"].tolist() == [9.99, 19.0]


@pytest.mark.parametrize("price", ["1_000", "\uff11\uff12", "\u0661\u0662", "inf", "nan", "0x10"])
def test_a_price_float_would_read_but_a_price_list_would_not_hold_is_not_a_number(price: str):
    body = json.dumps([{"sku": "A1", "price": price}]).encode()

    offers = parse_feed(plain_feed(), body, FETCHED_AT)

    assert offers["price"].isna().all()


def test_a_relative_observation_time_is_not_a_time_the_offer_was_seen():
    body = b'[{"sku": "A1", "price": 9.5, "observed_at": "now"}, {"sku": "B2", "price": 19, "observed_at": "today"}]'

    offers = parse_feed(plain_feed(), body, FETCHED_AT)

    assert offers["observed_at"].isna().all()


def test_a_feed_error_quoting_a_field_name_with_nul_or_a_surrogate_can_be_stored():
    with pytest.raises(MalformedFeedError) as caught:
        parse_feed(plain_feed(), b'[{"sku\\u0000": "A1", "\\ud800": 1}]', FETCHED_AT)

    text = str(caught.value)
    assert "\x00" not in text and "\ufffd" in text
    text.encode("utf-8")
