"""Classification of raw prediction messages: accepted, invalid (each kind), duplicate, stale."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from autotrader.signals.intake import (
    MAX_DETAIL_CHARS,
    Delivery,
    IntakeOutcome,
    SeenIds,
    Verdict,
    classify,
    excerpt,
)
from autotrader.signals.prediction import Prediction

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
HOUR_MS = 3_600_000
NOW = T0 + 60_000  # one minute after the prediction


def message(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "p-1",
        "symbol": "BTCUSDT",
        "ts": T0,
        "direction": "long",
        "confidence": 0.62,
        "horizon": "4h",
        "model": "lgbm-v3",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def raw(**changes: Any) -> bytes:
    return json.dumps(message(**changes)).encode()


def never(_signal_id: str) -> bool:
    return False


def test_classify_valid_message_accepted_with_prediction() -> None:
    outcome = classify(raw(symbol="btc/usdt", horizon="4H", direction=-1), NOW, never)
    assert outcome.verdict is Verdict.ACCEPTED
    assert outcome.accepted
    assert outcome.reason == ""
    assert outcome.prediction == Prediction(
        id="p-1", symbol="BTCUSDT", ts=T0, direction="short", confidence=0.62, horizon="4h", model="lgbm-v3"
    )


def test_classify_integer_confidence_accepted_as_float() -> None:
    outcome = classify(raw(confidence=1), NOW, never)
    assert outcome.accepted
    assert outcome.prediction is not None
    assert outcome.prediction.confidence == 1.0


@pytest.mark.parametrize(
    ("payload", "detail_part"),
    [
        (b"not json", "not valid UTF-8 JSON"),
        (b"", "not valid UTF-8 JSON"),
        (b'{"id": "p-1", ', "not valid UTF-8 JSON"),
        (b"\xff\xfe\x00", "not valid UTF-8 JSON"),
    ],
)
def test_classify_not_json_invalid_json(payload: bytes, detail_part: str) -> None:
    outcome = classify(payload, NOW, never)
    assert outcome.verdict is Verdict.INVALID
    assert outcome.reason == "invalid_json"
    assert detail_part in outcome.detail
    assert outcome.prediction is None


def test_classify_no_value_invalid_json() -> None:
    outcome = classify(None, NOW, never)
    assert (outcome.verdict, outcome.reason) == (Verdict.INVALID, "invalid_json")


@pytest.mark.parametrize(
    ("payload", "detail_part"),
    [
        (b"[1, 2]", "not a JSON object"),
        (b'"text"', "not a JSON object"),
        (raw(extra_field=1), "unknown field 'extra_field'"),
        (raw(confidence=1.5), "confidence: Input should be less than or equal to 1"),
        (raw(confidence=-0.01), "confidence: Input should be greater than or equal to 0"),
        (raw(confidence="0.5"), "confidence: Input should be a valid number"),
        (raw(confidence=True), "confidence"),
        (raw(ts=1_704_067_200), "seconds instead?"),
        (raw(ts=1.7e12), "ts: Input should be a valid integer"),
        (raw(ts="2024-01-01T00:00:00"), "ts: Input should be a valid integer"),
        (raw(direction="up"), "direction: Input should be 'long', 'short' or 'flat'"),
        (raw(direction=True), "direction"),
        (raw(horizon="soon"), "horizon: 'soon' is not a duration"),
        (raw(horizon=4), "horizon: must be a duration"),
        (raw(id=""), "id: String should have at least 1 character"),
        (raw(id=7), "id: Input should be a valid string"),
        (raw(model=...), "missing field 'model'"),
    ],
)
def test_classify_schema_violation_invalid_schema(payload: bytes, detail_part: str) -> None:
    outcome = classify(payload, NOW, never)
    assert outcome.verdict is Verdict.INVALID
    assert outcome.reason == "invalid_schema"
    assert detail_part in outcome.detail
    assert "\n" not in outcome.detail


def test_classify_nan_confidence_invalid() -> None:
    payload = raw().replace(b"0.62", b"NaN")
    outcome = classify(payload, NOW, never)
    assert outcome.verdict is Verdict.INVALID


def test_classify_many_problems_summarised_in_one_line() -> None:
    outcome = classify(b"{}", NOW, never)
    assert outcome.reason == "invalid_schema"
    assert outcome.detail.startswith("missing field 'id'; missing field 'symbol'; missing field 'ts'")
    assert outcome.detail.endswith("(+4 more)")


def test_classify_seen_id_duplicate() -> None:
    seen = SeenIds(["p-1"])
    outcome = classify(raw(), NOW, seen.seen)
    assert outcome.verdict is Verdict.DUPLICATE
    assert outcome.reason == "duplicate"
    assert outcome.prediction is not None
    assert outcome.prediction.id == "p-1"
    assert classify(raw(id="p-2"), NOW, seen.seen).accepted


def test_classify_invalid_checked_before_duplicate() -> None:
    outcome = classify(raw(confidence=2), NOW, SeenIds(["p-1"]).seen)
    assert outcome.verdict is Verdict.INVALID


def test_classify_horizon_over_at_receipt_stale() -> None:
    outcome = classify(raw(horizon="1h"), T0 + HOUR_MS, never)
    assert outcome.verdict is Verdict.STALE
    assert outcome.reason == "stale"
    assert "horizon 1h" in outcome.detail
    assert outcome.prediction is not None


def test_classify_just_inside_horizon_accepted() -> None:
    assert classify(raw(horizon="1h"), T0 + HOUR_MS - 1, never).accepted


def test_classify_prediction_from_the_future_accepted() -> None:
    assert classify(raw(), T0 - 5_000, never).accepted


def test_classify_prediction_beyond_its_horizon_ahead_skipped_as_future() -> None:
    outcome = classify(raw(horizon="4h"), T0 - 4 * HOUR_MS - 1, never)
    assert outcome.verdict is Verdict.STALE
    assert outcome.reason == "future"
    assert "different clocks" in outcome.detail
    assert classify(raw(horizon="4h"), T0 - 4 * HOUR_MS, never).accepted


def test_seen_ids_capacity_forgets_oldest() -> None:
    seen = SeenIds(["a", "b"], capacity=2)
    seen.add("c")
    assert not seen.seen("a")
    assert seen.seen("b")
    assert "c" in seen
    assert len(seen) == 2


def test_delivery_exposes_signal_id_and_position() -> None:
    outcome = classify(raw(), NOW, never)
    delivery = Delivery(outcome.prediction, outcome, raw(), partition=2, offset=41, topic="predictions")
    assert delivery.signal_id == "p-1"
    assert delivery.position == "predictions[2]@41"
    bad = IntakeOutcome.invalid("invalid_json", "x")
    assert Delivery(None, bad, b"x", 0, 0).signal_id is None


# ------------------------------------------------------------------- bounds (what the store can hold)


@pytest.mark.parametrize(
    ("changes", "detail_part"),
    [
        ({"horizon": "99999999999999999999w"}, "horizon: longer than 20 characters"),
        ({"horizon": "31d"}, "horizon: '31d' is longer than 30 days"),
        ({"horizon": "9999999w"}, "longer than 30 days"),
        ({"symbol": "X" * 41}, "symbol: longer than 40 characters (41)"),
        ({"symbol": "BTC USDT"}, "symbol: may only use"),
        ({"symbol": "BTC\u0000USDT"}, "symbol: may only use"),
        ({"id": "i" * 201}, "id: longer than 200 characters (201)"),
        ({"id": " p-1"}, "id: has leading or trailing whitespace"),
        ({"id": "p-1\n"}, "id: has leading or trailing whitespace"),
        ({"id": "p\u00001"}, "id: contains a control character"),
        ({"model": "m" * 201}, "model: longer than 200 characters (201)"),
        ({"model": "m\u0085x"}, "model: contains a control character"),
        ({"ts": 10**40}, "ts: a huge number is not epoch milliseconds"),
    ],
)
def test_classify_field_beyond_store_bounds_invalid_schema(changes: dict[str, Any], detail_part: str) -> None:
    outcome = classify(raw(**changes), NOW, never)
    assert (outcome.verdict, outcome.reason) == (Verdict.INVALID, "invalid_schema")
    assert detail_part in outcome.detail


def test_classify_fields_at_store_bounds_accepted() -> None:
    outcome = classify(raw(id="i" * 200, symbol="X" * 40, model="m" * 200, horizon="30d"), NOW, never)
    assert outcome.accepted


def test_classify_30_day_horizon_replayed_later_stale() -> None:
    assert classify(raw(horizon="30d"), T0 + 30 * 24 * HOUR_MS, never).verdict is Verdict.STALE


def test_classify_duplicate_key_invalid_schema() -> None:
    payload = raw().replace(b'"id": "p-1"', b'"id": "p-1", "id": "p-2"')
    outcome = classify(payload, NOW, never)
    assert (outcome.verdict, outcome.reason) == (Verdict.INVALID, "invalid_schema")
    assert outcome.detail == "key 'id' appears more than once"


def test_classify_duplicate_key_with_unreadable_first_value_invalid() -> None:
    payload = raw().replace(b'"id": "p-1"', b'"id": ' + b"[" * 3000 + b"]" * 3000 + b', "id": "p-1"')
    assert classify(payload, NOW, never).verdict is Verdict.INVALID


def test_classify_oversized_message_too_large_without_parsing() -> None:
    payload = raw(model="m" * 20_000)
    outcome = classify(payload, NOW, never)
    assert (outcome.verdict, outcome.reason) == (Verdict.INVALID, "too_large")
    assert str(len(payload)) in outcome.detail


@pytest.mark.parametrize(
    "payload",
    [
        raw(horizon="4h" * 5000),
        json.dumps({**message(), "k" * 10_000: 1}).encode(),
        json.dumps({**message(), "direction": "x" * 10_000}).encode(),
        b'{"id": "' + b"\x00" * 10_000 + b'"}',
        b"[" * 10_000,
    ],
)
def test_classify_huge_bad_value_detail_bounded_one_line(payload: bytes) -> None:
    outcome = classify(payload, NOW, never)
    assert outcome.verdict is Verdict.INVALID
    assert len(outcome.detail) <= MAX_DETAIL_CHARS
    assert outcome.detail.isprintable()


def test_excerpt_long_message_cut_with_hash_and_length() -> None:
    data = b"x" * 10_000
    cut = excerpt(data)
    assert cut.head == data[:4096]
    assert cut.length == 10_000
    assert cut.truncated
    assert cut.sha256 == hashlib.sha256(data).hexdigest()
    assert "10000 bytes, first 4096 kept" in cut.describe()
    assert not excerpt(b"short").truncated
