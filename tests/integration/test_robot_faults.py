"""Faults: exchange-sim injects timeouts, 5xx, dropped answers and 10006 bursts while the robot trades.

The robot must keep running, never place an order twice, end up with the exchange's positions,
and report what went wrong (metrics, fault events, the status report).
"""

from __future__ import annotations

import asyncio
import json
import logging
from decimal import Decimal

from robot_harness import MINUTE, ListSource, build_robot, connect, new_account, robot_config, sim_server, venue_view

from autotrader.adapters.state import open_state_store
from autotrader.cli.status import render_risk
from autotrader.live.metrics import LogCounter
from autotrader.live.records import IntentKind, Outcome
from autotrader.live.status import risk_management

FAULTS = [
    {"kind": "timeout", "path": "/v5/order/create", "count": 2, "probability": 0.3, "delay_s": 1.3},
    {"kind": "http_error", "path": "/v5/order/create", "count": 3, "probability": 0.3, "status": 502},
    {"kind": "drop_after_accept", "path": "/v5/order/create", "count": 3, "probability": 0.3, "delay_s": 1.3},
    {"kind": "error_after_accept", "path": "/v5/order/create", "count": 3, "probability": 0.3, "status": 503},
    {"kind": "rate_limit", "path": "/v5/order/", "count": 4, "probability": 0.3, "duration_s": 0.3},
    {"kind": "http_error", "path": "/v5/execution/list", "count": 3, "probability": 0.2, "status": 500},
    {"kind": "ret_code", "path": "/v5/order/realtime", "count": 2, "probability": 0.2, "ret_code": 10016},
    {"kind": "http_error", "path": "/v5/market/kline", "count": 2, "probability": 0.2, "status": 502},
]


def test_robot_under_exchange_faults_keeps_running_without_duplicates_and_reports(tmp_path) -> None:
    with sim_server(seed=5) as sim:
        account = new_account(sim, "10000")
        store = open_state_store(f"sqlite:///{tmp_path / 'state.db'}")
        exchange = connect(sim, account, timeout_s=1.0, max_attempts=3)
        clock_ms = sim.state.clock.now_ms
        source = ListSource(clock_ms, store.seen)
        robot = build_robot(sim, exchange, store, robot_config(reconcile_interval_s=1.0), signals=source)
        counter = LogCounter(robot.metrics.exchange_retries)
        logging.getLogger("autotrader.adapters.exchange").addHandler(counter)
        for fault in FAULTS:
            sim.admin.fault(**fault)
        fired: dict[str, int] = {}

        async def go() -> None:
            await robot.start()
            for i in range(24):
                symbol = "BTCUSDT" if i % 2 else "ETHUSDT"
                direction = "long" if (i // 2) % 2 == 0 else "flat"
                source.push(
                    json.dumps(
                        {
                            "id": f"f-{i}",
                            "symbol": symbol,
                            "ts": clock_ms(),
                            "direction": direction,
                            "confidence": 0.9,
                            "horizon": "1h",
                            "model": "m",
                        }
                    ).encode()
                )
                sim.admin.advance(MINUTE // 2)
                await robot.step()  # must not raise, whatever the exchange does
            fired.update({f"{f['kind']}:{f['path']}": f["fired"] for f in sim.admin.state()["faults"]})
            sim.admin.clear_faults()
            for _ in range(3):  # faults over: reconciliation resolves anything left open
                sim.admin.advance(MINUTE)
                await robot.reconcile()
                await robot.step()
            await robot.stop()
            await exchange.close()

        try:
            asyncio.run(go())
        finally:
            logging.getLogger("autotrader.adapters.exchange").removeHandler(counter)
        view = venue_view(sim, account[0])

    assert sum(fired.values()) >= 8, fired  # the faults did happen
    # no duplicate at the exchange: one order per client id, and at most one entry per signal
    links = [link for link in view["link_ids"] if link]
    assert len(links) == len(set(links))
    entries = [store.load_order(link) for link in links if "-entr-" in link]
    assert all(o is not None for o in entries)
    signal_ids = [o.signal_id for o in entries]
    assert len(signal_ids) == len(set(signal_ids))
    # every signal decided; the store equals the exchange
    decisions = {d.signal_id: d for d in store.decisions()}
    assert len(decisions) == 24
    assert sum(d.outcome is Outcome.ENTRY for d in decisions.values()) >= 4
    positions = store.load_positions()
    for symbol, coin in (("BTCUSDT", "BTC"), ("ETHUSDT", "ETH")):
        assert positions.get(symbol) is None or positions[symbol].qty == view["wallet"].get(coin, Decimal(0))
    assert store.load_ledger().cash == view["wallet"]["USDT"]
    assert [o for o in store.load_orders(open_only=True) if o.kind is not IntentKind.STOP] == []
    # the faults are reported: metrics, fault events, the status block
    metrics = robot.metrics.render()
    assert robot.metrics.exchange_retries.total() > 0
    assert "autotrader_exchange_retries_total" in metrics
    faults = store.events(kinds=["fault"])
    assert faults, "no fault was recorded"
    block = risk_management(store, view_time := store.last_heartbeat().wall_ms)
    assert view_time
    assert "Exchange faults (last 24 h)" in render_risk(block)
    print(
        f"faults fired at the venue: {fired}; absorbed by the adapter: {robot.metrics.exchange_retries.total():.0f}; "
        f"seen by the robot: {robot.metrics.exchange_errors.values}; {len(links)} orders, all distinct"
    )
    store.close()
