"""A demo run driven by Kafka signals against exchange-sim: it trades, persists and reports status.

Also the intake rules end to end: malformed messages are dead-lettered (store and DLQ topic),
duplicates ignored, stale and unknown-symbol signals skipped with their reason.
"""

from __future__ import annotations

pytest_plugins = ["conftest_kafka"]

import asyncio  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from decimal import Decimal  # noqa: E402
from typing import Any  # noqa: E402

import typer  # noqa: E402
from robot_harness import MINUTE, build_robot, connect, new_account, sim_server, venue_view  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from autotrader.adapters.broker.kafka import KafkaSignalPublisher, KafkaSignalSource, tail_messages  # noqa: E402
from autotrader.adapters.state import open_state_store  # noqa: E402
from autotrader.cli.autotrade import register  # noqa: E402
from autotrader.live.records import Outcome  # noqa: E402

HOUR = 3_600_000


def message(
    signal_id: str, symbol: str, ts: int, direction: str = "long", confidence: float = 0.8, horizon: str = "1h"
) -> bytes:
    return json.dumps(
        {
            "id": signal_id,
            "symbol": symbol,
            "ts": ts,
            "direction": direction,
            "confidence": confidence,
            "horizon": horizon,
            "model": "test-model",
        }
    ).encode()


async def run_until(robot: Any, sim: Any, done: Any, timeout_s: float = 40.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "the robot did not decide every signal in time"
        sim.admin.advance(MINUTE // 4)
        await robot.step()


def test_robot_demo_kafka_signals_trade_persist_and_report(kafka_url, tmp_path, monkeypatch) -> None:
    db = f"sqlite:///{tmp_path / 'state.db'}"
    with sim_server() as sim:
        account = new_account(sim, "10000")
        store = open_state_store(db)
        exchange = connect(sim, account)
        now = sim.admin.market_time_ms()
        first = [
            message("low-conf", "BTCUSDT", now, confidence=0.3),
            message("btc-long", "BTCUSDT", now),
            message("eth-long", "ETHUSDT", now),
            message("btc-long", "BTCUSDT", now),  # duplicate id
            message("old", "ETHUSDT", now - 2 * HOUR),  # horizon 1 h is over: stale
            message("xrp", "XRPUSDT", now),  # not traded by this robot
            b"{not json",
            json.dumps(
                {
                    "id": "bad",
                    "symbol": "BTCUSDT",
                    "ts": now,
                    "direction": "up",
                    "confidence": 2,
                    "horizon": "1h",
                    "model": "m",
                }
            ).encode(),
        ]
        with KafkaSignalPublisher(kafka_url) as publisher:
            for raw in first:
                publisher.send_raw(raw, key=b"k")
            publisher.flush()
        clock_ms = sim.state.clock.now_ms
        source = KafkaSignalSource(
            kafka_url,
            group_id=f"robot-{uuid.uuid4().hex[:8]}",
            seen=store.seen,
            clock_ms=clock_ms,
            session_timeout_ms=2000,
        )
        robot = build_robot(sim, exchange, store, signals=source)

        async def go() -> None:
            await robot.start()
            await run_until(robot, sim, lambda: len(store.decisions()) >= 5 and len(store.dead_letters()) >= 2)
            sim.admin.advance(3 * MINUTE)
            with KafkaSignalPublisher(kafka_url) as publisher:
                publisher.send_raw(message("btc-flat", "BTCUSDT", sim.admin.market_time_ms(), "flat"), key=b"k")
                publisher.flush()
            await run_until(robot, sim, lambda: store.seen("btc-flat"))
            for _ in range(3):
                sim.admin.advance(MINUTE)
                await robot.step()
            await robot.stop()
            await exchange.close()

        asyncio.run(go())
        view = venue_view(sim, account[0])

    decisions = {d.signal_id: d for d in store.decisions()}
    assert decisions["btc-long"].outcome is Outcome.ENTRY
    assert decisions["eth-long"].outcome is Outcome.ENTRY
    assert decisions["btc-flat"].outcome is Outcome.EXIT
    assert (decisions["low-conf"].outcome, decisions["low-conf"].reason) == (Outcome.SKIPPED, "low_confidence")
    assert (decisions["old"].outcome, decisions["old"].reason) == (Outcome.SKIPPED, "stale")
    assert "late" in decisions["old"].detail
    assert (decisions["xrp"].outcome, decisions["xrp"].reason) == (Outcome.SKIPPED, "unknown_symbol")
    assert len(decisions) == 6  # the duplicate was ignored
    letters = store.dead_letters()
    assert sorted(letter.reason for letter in letters) == ["invalid_json", "invalid_schema"]
    dlq = list(tail_messages(kafka_url + ".dlq", idle_timeout_s=3.0))
    assert len(dlq) == 2
    assert {m.headers["x-dlq-reason"] for m in dlq} == {b"invalid_json", b"invalid_schema"}

    # persisted state equals the exchange's
    positions = store.load_positions()
    assert positions["ETHUSDT"].qty == view["wallet"]["ETH"] > 0
    assert positions["BTCUSDT"].qty == view["wallet"].get("BTC", Decimal(0))
    assert robot.book.open_side("BTCUSDT", 40_000.0) == 0  # only dust left after the exit
    assert store.load_ledger().cash == view["wallet"]["USDT"]
    # the exchange's orders are exactly the store's orders that reached it (the simulator refuses a
    # duplicate id by itself, so counting the venue's ids alone could never fail)
    sent = [o.client_order_id for o in store.load_orders(open_only=False) if o.order.venue_order_id]
    assert sorted(view["link_ids"]) == sorted(sent)
    eth_stop = positions["ETHUSDT"].stop_client_order_id
    assert view["open"] == {eth_stop: "Untriggered"}  # BTC's stop was cancelled with the exit
    [trade] = store.load_trades()
    assert (trade.symbol, trade.exit_reason, trade.signal_id, trade.exit_signal_id) == (
        "BTCUSDT",
        "signal",
        "btc-long",
        "btc-flat",
    )
    assert store.last_heartbeat().status == "stopped"
    metrics = robot.metrics.render()
    assert 'autotrader_signals_total{source="kafka",verdict="invalid"} 2' in metrics
    assert 'autotrader_signals_total{source="kafka",verdict="duplicate"} 1' in metrics
    assert "autotrader_signal_to_ack_seconds_count 3" in metrics  # two entries and one exit acknowledged
    store.close()

    # --mode=status, from the store only (the robot is not running)
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["autotrade", "--mode", "status", "--db", db, "--days", "1"])
    assert result.exit_code == 0, result.output
    print(result.output)
    out = result.output
    assert "RISK MANAGEMENT" in out
    assert "not running" in out
    assert "ETHUSDT" in out
    for limit in ("position size", "daily loss", "drawdown", "correlation", "leverage"):
        assert limit in out
    assert "LIVE TRADING RESULTS" in out
    assert "stale 1" in out
    assert "invalid_json 1" in out
    assert "Realised P&L" in out
    assert "Best trade: BTCUSDT" in out
