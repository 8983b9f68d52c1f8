"""The trailing stop moves at exchange-sim without a moment when the position has no resting stop.

The price of ``test_robot_exits`` (flat, 1 % a bar up for 8 bars, back down for 12); a long on
linear with a stop-loss of 3 % and a trailing stop of 2 %. The simulator is watched from inside:
after every change to the account's orders, a position that is open must have at least one stop
(a conditional reduce-only order) resting. The stop moves by ``/v5/order/amend``; when the amend is
refused it moves by placing the new stop first; when the new stop is refused too, the old one keeps
resting and the robot watches the tighter level; a robot killed during an amend finds its stop at
the persisted level after the restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from robot_harness import MINUTE, btc_venue, close_bars, signal, start_on_signal
from test_robot_exits import _out_and_back

LIMITS = {"stop_loss": 0.03, "trailing_stop": 0.02}


class ProcessDied(BaseException):
    """The robot's process ends abruptly."""


def _watch(sim, api_key: str) -> Callable[[], list[str]]:
    """Every order change of the account that left its open position without a resting stop.

    Watched from the first stop of a position on (the entry fills before its stop can be placed).
    The robot's own exit at market cancels the stop just before it closes the position: a stop
    cancelled while the very next order closes the position is that exit, not a gap.
    """
    gaps: list[str] = []
    armed = [False]
    pending: list[str] = []

    def listener(acct: Any, topic: str, data: list[dict[str, Any]]) -> None:
        if acct.api_key != api_key or topic != "order":
            return
        held = any(p.size != 0 for p in acct.positions.values())
        stops = [o for o in acct.orders.values() if o.is_open and o.status == "Untriggered" and "-sl-" in o.link_id]
        what = ", ".join(f"{d.get('orderLinkId')} {d.get('orderStatus')}" for d in data)
        if pending and "-sl-" not in what and not held:
            pending.clear()  # the exit at market that followed the cancel closed the position
        gaps.extend(pending)
        pending.clear()
        armed[0] = held and (armed[0] or bool(stops))
        if armed[0] and not stops:
            pending.append(what)

    sim.state.engine.listeners.append(listener)
    return lambda: [*gaps, *pending]


def _run(tmp_path, faults_after_entry: list[dict] = (), bars: int = 40, probe=None) -> dict:
    with btc_venue(tmp_path, _out_and_back(1), market="linear", risk_overrides=LIMITS) as venue:
        sim, store = venue.sim, venue.store
        gaps = _watch(sim, venue.account[0])
        robot, exchange, source = venue.process()
        seen: dict = {"levels": [], "robot_side": []}

        async def go() -> None:
            await start_on_signal(robot, source, signal(sim.state.clock.now_ms, direction="long"))
            seen["first_stop"] = robot.book.position("BTCUSDT").stop_client_order_id
            for fault in faults_after_entry:
                sim.admin.fault(**fault)
            for i in range(bars):
                sim.admin.advance(MINUTE)
                await robot.step()
                pos = robot.book.position("BTCUSDT")
                if pos.qty != 0:
                    seen["levels"].append(pos.stop_price)
                    seen["robot_side"].append(robot.om.robot_stop("BTCUSDT"))
                if probe is not None:
                    probe(i, robot, venue.view(), seen)
            await exchange.close()

        asyncio.run(go())
        seen["view"] = venue.view()
        seen["requests"] = dict(sim.state.requests)
        seen["trades"] = store.load_trades()
        seen["gaps"] = gaps()
        store.close()
    return seen


def _sl_ids(view: dict) -> list[str]:
    return [cid for cid in view["link_ids"] if "-sl-" in cid]


def test_the_trailing_stop_moves_by_amend_and_the_position_is_never_unprotected(tmp_path) -> None:
    seen = _run(tmp_path)
    assert seen["gaps"] == []
    assert _sl_ids(seen["view"]) == [seen["first_stop"]]  # one stop order for the whole trade, amended
    assert seen["requests"].get("/v5/order/amend", 0) >= 5
    assert len(set(seen["levels"])) >= 5
    [trade] = seen["trades"]
    assert (trade.exit_reason, trade.pnl > 0) == ("trailing_stop", True)


def test_a_refused_amend_places_the_new_stop_first(tmp_path) -> None:
    refuse_amend = {"kind": "ret_code", "path": "/v5/order/amend", "count": None, "ret_code": 10001, "ret_msg": "bad"}
    seen = _run(tmp_path, [refuse_amend])
    assert seen["gaps"] == []  # the old stop is cancelled only once the new one rests
    assert len(_sl_ids(seen["view"])) >= 5  # each move is a new order
    assert seen["robot_side"] == [None] * len(seen["robot_side"])
    [trade] = seen["trades"]
    assert trade.exit_reason == "trailing_stop"
    assert seen["view"]["open"] == {}


def test_a_refused_new_stop_keeps_the_old_one_and_the_robot_watches_the_new_level(tmp_path) -> None:
    refuse_amend = {"kind": "ret_code", "path": "/v5/order/amend", "count": None, "ret_code": 10001, "ret_msg": "bad"}
    refuse_stops = {"kind": "refuse_conditional", "path": "/v5/order/create", "count": None, "ret_code": 10001}

    def probe(i: int, robot, view: dict, seen: dict) -> None:
        if robot.book.position("BTCUSDT").qty != 0 and robot.om.robot_stop("BTCUSDT") is not None:
            seen.setdefault("resting_while_robot_side", []).append(
                [cid for cid in view["open"] if "-sl-" in cid] == [seen["first_stop"]]
            )

    seen = _run(tmp_path, [refuse_amend, refuse_stops], probe=probe)
    assert seen["gaps"] == []
    assert seen["resting_while_robot_side"] and all(seen["resting_while_robot_side"])  # the old stop rests
    watched = [level for level in seen["robot_side"] if level is not None]
    assert len(set(watched)) >= 3  # the robot-side level trails
    [trade] = seen["trades"]
    assert trade.exit_reason == "trailing_stop"
    assert Decimal(str(trade.exit_price)) > Decimal(40_000)  # out at the trailed level, above the resting one
    assert seen["view"]["open"] == {}


def test_a_robot_killed_during_an_amend_finds_its_stop_at_the_persisted_level_after_restart(tmp_path) -> None:
    with btc_venue(tmp_path, _out_and_back(1), market="linear", risk_overrides=LIMITS) as venue:
        sim, store, clock = venue.sim, venue.store, venue.sim.state.clock.now_ms
        gaps = _watch(sim, venue.account[0])
        seen: dict = {}

        async def go() -> None:
            robot, exchange, source = venue.process()
            await start_on_signal(robot, source, signal(clock, direction="long"))
            await close_bars(sim, robot, 12)  # flat, then 2 bars up: the stop trails
            seen["before"] = robot.book.position("BTCUSDT").stop_price

            async def dies(*a, **k):
                raise ProcessDied

            exchange.amend_trigger = dies  # the next move dies with the request in flight
            sim.admin.advance(MINUTE)
            with pytest.raises(ProcessDied):
                await robot.step()
            seen["wanted"] = robot.om.stop_price("BTCUSDT")
            await exchange.close()
            robot, exchange, _ = venue.process()
            await robot.start()  # reconciliation
            cid = robot.book.position("BTCUSDT").stop_client_order_id
            seen["at_venue"] = (await exchange.order_by_client_id("linear", "BTCUSDT", cid)).trigger_price
            seen["stored"] = robot.book.position("BTCUSDT").stop_price
            await exchange.close()

        asyncio.run(go())
        store.close()
    assert seen["wanted"] > seen["before"]
    assert seen["at_venue"] == seen["wanted"] == seen["stored"]
    assert gaps() == []
