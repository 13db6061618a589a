"""Property tests of the framework-set-2 webhook envelope (``webhooks.parse_json`` and ``validate_envelope``).

Arbitrary bytes and arbitrary JSON documents (NaN, ±Infinity, 1e400, huge integers, deep nesting, NUL, lone
surrogates, unknown or reserved keys) either validate to an event spec and data holding only finite numbers, or
are refused with a ``WebhookError`` carrying a 4xx status; any other exception is a bug.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from framework2.service.webhooks import (
    ALLOWED,
    INBOUND_EVENTS,
    RESERVED_DATA_KEYS,
    WebhookError,
    parse_json,
    validate_envelope,
)

FIELD_NAMES = sorted({name for spec in INBOUND_EVENTS for name in spec.data.model_fields} | set(RESERVED_DATA_KEYS))
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", "\x00", "\ud800", "v1", "ppis", "default"]),
)
JSON = st.recursive(
    LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=6)), children, max_size=4),
    ),
    max_leaves=12,
)
DATA = st.dictionaries(st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=6)), JSON, max_size=5)
OPEN_EVENTS = [spec for spec in INBOUND_EVENTS if not any(f.is_required() for f in spec.data.model_fields.values())]
SYSTEMS = st.one_of(st.sampled_from(sorted(ALLOWED)), JSON)
EVENTS = st.one_of(st.sampled_from(sorted({spec.name for spec in INBOUND_EVENTS})), JSON)


@st.composite
def envelopes(draw: st.DrawFn) -> Any:
    """An envelope-shaped document, with fields dropped, added or of the wrong kind; or any JSON value."""
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return draw(JSON)
    if choice < 5:  # an event that needs no data, with extra keys of any JSON value
        spec = draw(st.sampled_from(OPEN_EVENTS))
        extras = draw(st.dictionaries(st.text(max_size=6).filter(lambda k: k not in FIELD_NAMES), JSON, max_size=3))
        return {"system": spec.system, "event": spec.name, "data": extras}
    document = {"system": draw(SYSTEMS), "event": draw(EVENTS), "data": draw(st.one_of(DATA, DATA, JSON))}
    for key in draw(st.lists(st.sampled_from(["system", "event", "data"]), max_size=1)):
        del document[key]
    document.update(draw(st.dictionaries(st.text(max_size=5), JSON, max_size=1)))
    return document


def _numbers(value: Any) -> list[float | int]:
    if isinstance(value, dict):
        return [n for child in value.values() for n in _numbers(child)]
    if isinstance(value, list):
        return [n for child in value for n in _numbers(child)]
    return [value] if isinstance(value, int | float) and not isinstance(value, bool) else []


def _accepts_or_refuses(body: bytes) -> None:
    """The envelope contract for one request body."""
    try:
        spec, data = validate_envelope(parse_json(body))
    except WebhookError as exc:
        assert 400 <= exc.status < 500 and exc.message.strip()
        event(f"refused {exc.status}")
        return
    event("accepted")
    document = parse_json(body)
    assert (spec.system, spec.name) == (document["system"], document["event"])
    assert all(math.isfinite(n) for n in _numbers(data))
    json.dumps(data, allow_nan=False)  # the event payload is strict JSON
    for key, value in document["data"].items():
        if key not in spec.data.model_fields:
            assert data[key] == value, f"extra key {key!r} is passed on unchanged"


@settings(max_examples=150, deadline=None)
@given(document=envelopes())
def test_any_json_envelope_is_validated_with_finite_data_or_refused_with_a_4xx(document: Any) -> None:
    # allow_nan writes NaN/Infinity; "surrogatepass" keeps a lone surrogate (ensure_ascii writes it as \\ud800).
    _accepts_or_refuses(json.dumps(document, allow_nan=True).encode("utf-8", "surrogatepass"))


@settings(max_examples=150, deadline=None)
@given(
    body=st.one_of(
        st.binary(max_size=80),
        st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.sampled_from(
            [
                b"\xef\xbb\xbf{}",
                b'{"system": "ppis", "event": "prices.changed", "data": {"x": 1e400}}',
                b'{"system": "ppis", "event": "prices.changed", "data": {"x": -Infinity}}',
                b'{"system": "ppis", "event": "prices.changed", "data": {"x": NaN}}',
                b'{"system": "ppis", "event": "prices.changed", "data": {"x": ' + b"9" * 5000 + b"}}",
                b"[" * 100_000 + b"]" * 100_000,
                b'{"system": "ppis", "event": "prices.changed", "data": {}, "system": 1}',
            ]
        ),
    )
)
def test_any_request_body_is_validated_or_refused_with_a_4xx(body: bytes) -> None:
    _accepts_or_refuses(body)


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400"])
def test_a_non_finite_number_in_the_data_is_refused_with_400(number: bytes) -> None:
    with pytest.raises(WebhookError) as refused:
        validate_envelope(parse_json(b'{"system": "ppis", "event": "prices.changed", "data": {"x": ' + number + b"}}"))
    assert refused.value.status == 400
