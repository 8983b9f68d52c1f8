"""Risk at run time against exchange-sim: kill switch, drawdown halt with flatten, trading hours."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

from robot_harness import MINUTE, ListSource, build_robot, connect, new_account, robot_config, sim_server, venue_view

from autotrader.adapters.state import open_state_store
from autotrader.live.records import Outcome
from autotrader.live.risk_state import KillSwitch
from autotrader.live.robot_config import in_trading_hours, parse_trading_hours
from autotrader.risk.rules import HALTED


def signal(clock_ms, signal_id: str, symbol: str = "BTCUSDT", direction: str = "long") -> bytes:
    return json.dumps(
        {
            "id": signal_id,
            "symbol": symbol,
            "ts": clock_ms(),
            "direction": direction,
            "confidence": 0.9,
            "horizon": "1h",
            "model": "m",
        }
    ).encode()


def test_robot_kill_switch_pauses_entries_but_not_exits(tmp_path) -> None:
    with sim_server() as sim:
        account = new_account(sim)
        store = open_state_store(f"sqlite:///{tmp_path / 's.db'}")
        exchange = connect(sim, account)
        clock = sim.state.clock.now_ms
        source = ListSource(clock, store.seen)
        kill = KillSwitch(tmp_path / "KILL")
        robot = build_robot(sim, exchange, store, signals=source, kill_switch=kill)

        async def go() -> None:
            await robot.start()
            source.push(signal(clock, "a"))
            await robot.step()
            (tmp_path / "KILL").write_text("stop")  # pauses entries at once
            source.push(signal(clock, "b", "ETHUSDT"))
            source.push(signal(clock, "c", "BTCUSDT", "flat"))  # exits still go out
            await robot.step()
            (tmp_path / "KILL").unlink()  # the operator removes the file they created
            source.push(signal(clock, "d", "ETHUSDT"))
            await robot.step()
            await exchange.close()

        asyncio.run(go())
    d = {x.signal_id: x for x in store.decisions()}
    assert d["a"].outcome is Outcome.ENTRY
    assert (d["b"].outcome, d["b"].reason) == (Outcome.SKIPPED, "kill_switch")
    assert d["c"].outcome is Outcome.EXIT
    assert d["d"].outcome is Outcome.ENTRY
    store.close()


def test_robot_drawdown_breach_halts_entries_and_flattens(tmp_path) -> None:
    with sim_server() as sim:
        account = new_account(sim)
        store = open_state_store(f"sqlite:///{tmp_path / 's.db'}")
        exchange = connect(sim, account)
        clock = sim.state.clock.now_ms
        source = ListSource(clock, store.seen)
        config = robot_config(risk_overrides={"max_drawdown": 0.0005, "daily_loss": 0.9, "stop_loss": 0.2})
        robot = build_robot(sim, exchange, store, config, signals=source)

        async def go() -> None:
            await robot.start()
            source.push(signal(clock, "a"))
            source.push(signal(clock, "b", "ETHUSDT"))
            await robot.step()
            for _ in range(240):  # bars close; the fees alone breach a 0.05 % drawdown
                sim.admin.advance(MINUTE)
                await robot.step()
                if robot.risk.state == HALTED:
                    break
            for _ in range(2):
                sim.admin.advance(MINUTE)
                await robot.step()
            source.push(signal(clock, "c"))
            await robot.step()
            await exchange.close()

        asyncio.run(go())
        view = venue_view(sim, account[0])
    assert robot.risk.state == HALTED
    d = {x.signal_id: x for x in store.decisions()}
    assert (d["c"].outcome, d["c"].reason) == (Outcome.SKIPPED, "halted_drawdown")
    trades = store.load_trades()
    assert {t.exit_reason for t in trades} == {"drawdown_halt"}
    assert len(trades) == 2
    assert any(e.kind == "drawdown_halt" for e in store.events())
    for coin in ("BTC", "ETH"):
        assert store.load_positions()[coin + "USDT"].qty == view["wallet"].get(coin, Decimal(0))
    assert all(robot.book.open_side(s, 1.0) == 0 for s in ("BTCUSDT", "ETHUSDT"))
    store.close()


def test_trading_hours_windows_wrap_midnight() -> None:
    day = 1_704_067_200_000
    windows = parse_trading_hours("22:00-02:00,09:30-10:00")
    assert in_trading_hours(windows, day + 23 * 3_600_000)
    assert in_trading_hours(windows, day + 3_600_000)
    assert not in_trading_hours(windows, day + 3 * 3_600_000)
    assert in_trading_hours(windows, day + 9 * 3_600_000 + 45 * 60_000)
    assert in_trading_hours(parse_trading_hours("24/7"), day)


def test_robot_linear_perpetuals_positions_and_cash_match_the_exchange(tmp_path) -> None:
    with sim_server() as sim:
        account = new_account(sim)
        store = open_state_store(f"sqlite:///{tmp_path / 's.db'}")
        exchange = connect(sim, account)
        clock = sim.state.clock.now_ms
        source = ListSource(clock, store.seen)
        robot = build_robot(sim, exchange, store, robot_config(market="linear", leverage=2.0), signals=source)

        async def go() -> None:
            await robot.start()
            source.push(signal(clock, "a", "BTCUSDT", "long"))
            source.push(signal(clock, "b", "ETHUSDT", "short"))
            await robot.step()
            for _ in range(5):
                sim.admin.advance(MINUTE)
                await robot.step()
            source.push(signal(clock, "c", "BTCUSDT", "short"))  # reverse: exit the long, then go short
            await robot.step()
            sim.admin.advance(MINUTE)
            await robot.step()
            await robot.reconcile()
            await exchange.close()

        asyncio.run(go())
        view = venue_view(sim, account[0])
    d = {x.signal_id: x for x in store.decisions()}
    assert d["a"].outcome is Outcome.ENTRY
    assert d["b"].outcome is Outcome.ENTRY  # shorts are allowed on perpetuals
    assert d["c"].outcome is Outcome.ENTRY  # the reversal's entry (its exit went first)
    positions = store.load_positions()
    assert positions["BTCUSDT"].qty < 0
    assert positions["ETHUSDT"].qty < 0
    assert {s: p.qty for s, p in positions.items() if p.qty} == view["positions"]
    assert store.load_ledger().cash == view["wallet"]["USDT"]
    [trade] = store.load_trades()
    assert (trade.symbol, trade.side, trade.exit_signal_id) == ("BTCUSDT", 1, "c")
    stops = {link for link in view["open"] if "-sl-" in link}
    assert len(stops) == 2  # one reduce-only stop per position
    store.close()
