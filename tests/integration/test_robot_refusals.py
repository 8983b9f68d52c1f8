"""The robot's risk refusals end to end against exchange-sim, and invariants that can fail.

Every order the robot sends goes through a spy on the exchange adapter, so "no client order id
sent twice" and "one entry per signal" are checked on what the robot did, not on what the
simulator (which refuses a duplicate id by itself) let through.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from robot_harness import (
    BTC,
    MINUTE,
    ListSource,
    build_robot,
    connect,
    new_account,
    robot_config,
    signal,
    sim_server,
    venue_view,
)

from autotrader.adapters.state import open_state_store
from autotrader.domain.candles import Candles
from autotrader.live.records import IntentKind, Outcome
from autotrader.risk.rules import ACTIVE, DAILY_BLOCKED

DAY = 86_400_000


class SendSpy:
    """Wraps the adapter's ``create_order``: every client order id the robot sends, in order."""

    def __init__(self, exchange: Any) -> None:
        self.sent: list[str] = []
        self.qty: dict[str, Decimal] = {}
        inner = exchange.create_order

        async def create_order(order):
            self.sent.append(order.client_order_id)
            self.qty[order.client_order_id] = order.qty
            return await inner(order)

        exchange.create_order = create_order


def _decisions(store) -> dict[str, Any]:
    return {d.signal_id: d for d in store.decisions()}


def test_robot_sizes_down_a_correlated_second_entry_end_to_end(tmp_path) -> None:
    eth = Candles(BTC.ts, BTC.open / 16, BTC.high / 16, BTC.low / 16, BTC.close / 16, BTC.volume)  # correlation 1
    with sim_server({"BTCUSDT": BTC, "ETHUSDT": eth}) as sim:
        account = new_account(sim)
        store = open_state_store(f"sqlite:///{tmp_path / 's.db'}")
        exchange = connect(sim, account)
        spy = SendSpy(exchange)
        clock = sim.state.clock.now_ms
        source = ListSource(clock, store.seen)
        robot = build_robot(sim, exchange, store, robot_config(risk_overrides={"stop_loss": None}), signals=source)

        async def go() -> None:
            await robot.start()
            source.push(signal(clock, "btc"))
            await robot.step()
            source.push(signal(clock, "eth", "ETHUSDT"))  # same returns as BTC: exposure-weighted correlation 1 > 0.7
            await robot.step()
            await exchange.close()

        asyncio.run(go())
        view = venue_view(sim, account[0])
    d = _decisions(store)
    assert d["btc"].outcome is Outcome.ENTRY
    assert d["eth"].outcome is Outcome.ENTRY  # correlation is risk, not a wall: the entry is sized down
    entries = {store.load_order(c).order.symbol: c for c in spy.sent}
    assert set(entries) == {"BTCUSDT", "ETHUSDT"}
    btc_notional = float(spy.qty[entries["BTCUSDT"]]) * float(BTC.close[-1])
    eth_notional = float(spy.qty[entries["ETHUSDT"]]) * float(eth.close[-1])
    # a full BTC position and a perfectly correlated ETH one: the average correlation 1 × f must stay ≤ 0.7
    assert eth_notional / btc_notional == pytest.approx(0.7, abs=0.03)
    assert "ETH" in view["wallet"]
    store.close()


def test_robot_daily_loss_blocks_entries_not_exits_until_the_next_utc_day(tmp_path) -> None:
    with sim_server() as sim:
        account = new_account(sim)
        store = open_state_store(f"sqlite:///{tmp_path / 's.db'}")
        exchange = connect(sim, account)
        spy = SendSpy(exchange)
        clock = sim.state.clock.now_ms
        source = ListSource(clock, store.seen)
        # the entry fee alone (0.1 % of a 10 % position = 0.01 % of equity) breaches a 0.005 % daily loss
        config = robot_config(risk_overrides={"daily_loss": 0.00005, "max_drawdown": 0.9, "stop_loss": None})
        robot = build_robot(sim, exchange, store, config, signals=source)
        states: list[int] = []

        async def go() -> None:
            await robot.start()
            source.push(signal(clock, "a"))
            await robot.step()
            for _ in range(5):
                sim.admin.advance(MINUTE)
                await robot.step()
                if robot.risk.state == DAILY_BLOCKED:
                    break
            states.append(robot.risk.state)
            source.push(signal(clock, "b", "ETHUSDT"))  # refused: today's loss is beyond the limit
            source.push(signal(clock, "c", "BTCUSDT", "flat"))  # exits still go out
            await robot.step()
            for _ in range(2):  # marked flat after the exit, still today
                sim.admin.advance(MINUTE)
                await robot.step()
            now = clock()
            sim.admin.advance((now // DAY + 1) * DAY - now + MINUTE)  # into the next UTC day
            for _ in range(2):
                sim.admin.advance(MINUTE)
                await robot.step()
            states.append(robot.risk.state)
            source.push(signal(clock, "d", "ETHUSDT"))
            await robot.step()
            await exchange.close()

        asyncio.run(go())
    assert states == [DAILY_BLOCKED, ACTIVE]
    d = _decisions(store)
    assert d["a"].outcome is Outcome.ENTRY
    assert (d["b"].outcome, d["b"].reason) == (Outcome.SKIPPED, "daily_loss")
    assert d["c"].outcome is Outcome.EXIT
    assert d["d"].outcome is Outcome.ENTRY
    assert any(e.kind == "daily_loss_hit" for e in store.events())
    kinds = [store.load_order(c).kind for c in spy.sent]
    assert kinds == [IntentKind.ENTRY, IntentKind.EXIT, IntentKind.ENTRY]
    store.close()


def test_robot_invariants_one_entry_per_signal_and_exchange_orders_equal_store_orders(tmp_path) -> None:
    with sim_server() as sim:
        account = new_account(sim)
        store = open_state_store(f"sqlite:///{tmp_path / 's.db'}")
        exchange = connect(sim, account)
        spy = SendSpy(exchange)
        clock = sim.state.clock.now_ms
        source = ListSource(clock, store.seen)
        robot = build_robot(sim, exchange, store, robot_config(market="linear", leverage=2.0), signals=source)
        max_seen: dict[str, Decimal] = {}
        script = [
            [("a", "BTCUSDT", "long")],
            [("a", "BTCUSDT", "long"), ("b", "BTCUSDT", "long")],  # a redelivered, b already in position
            [("c", "ETHUSDT", "short"), ("c", "ETHUSDT", "short")],  # the same id twice in one batch
            [("d", "BTCUSDT", "short")],  # reversal: exit then entry
            [("e", "BTCUSDT", "flat"), ("f", "ETHUSDT", "long")],
            [("g", "BTCUSDT", "long"), ("h", "BTCUSDT", "long")],
        ]

        async def go() -> None:
            await robot.start()
            for batch in script:
                for signal_id, symbol, direction in batch:
                    source.push(signal(clock, signal_id, symbol, direction))
                await robot.step()
                for _ in range(2):
                    sim.admin.advance(MINUTE)
                    await robot.step()
                    for symbol, pos in store.load_positions().items():
                        max_seen[symbol] = max(max_seen.get(symbol, Decimal(0)), abs(pos.qty))
            await robot.reconcile()
            await exchange.close()

        asyncio.run(go())
        view = venue_view(sim, account[0])

    # no client order id was sent twice (nothing failed in this run, so nothing needed a resend)
    assert [c for c, n in Counter(spy.sent).items() if n > 1] == []
    orders = {c: store.load_order(c) for c in spy.sent}
    # one entry per signal, and every entry belongs to a signal that was decided ENTRY
    entries = Counter(o.signal_id for o in orders.values() if o.kind is IntentKind.ENTRY)
    assert entries and max(entries.values()) == 1
    d = _decisions(store)
    assert set(entries) == {s for s, x in d.items() if x.outcome is Outcome.ENTRY} == {"a", "c", "d", "f", "g"}
    # the position never exceeded one entry's size
    largest_entry = {
        sym: max(spy.qty[c] for c, o in orders.items() if o.kind is IntentKind.ENTRY and o.order.symbol == sym)
        for sym in ("BTCUSDT", "ETHUSDT")
    }
    for symbol, qty in max_seen.items():
        assert qty <= largest_entry[symbol], symbol
    # the exchange's orders are exactly the store's sent orders, and the positions agree
    assert sorted(view["link_ids"]) == sorted(spy.sent)
    stored = {o.client_order_id for o in store.load_orders(open_only=False) if o.order.venue_order_id}
    assert stored == set(view["link_ids"])
    assert {s: p.qty for s, p in store.load_positions().items() if p.qty} == view["positions"]
    store.close()
