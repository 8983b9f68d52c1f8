"""Save and restore one simulated account, so a paper wallet survives its process.

The demo's paper wallet is an in-process ``exchange-sim``. Like a real exchange, its account must
outlive the robot: ``account_state`` turns the account (balances, every order, every fill, positions,
leverage) and the matching engine's position in the replay into plain JSON, and ``restore_account``
puts it back into a fresh simulator. ``SimState.on_change`` calls the saver after any request or
matching step that changed an account, before the answer leaves, so what the robot was told is
durable (the same guarantee an exchange gives).
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

from autotrader.exchange_sim.engine import SimAccount, SimEngine, SimOrder, SimPosition

STATE_VERSION = 1


def _plain(obj: Any) -> dict[str, Any]:
    return {
        f.name: (str(v) if isinstance(v, Decimal) else v)
        for f in dataclasses.fields(obj)
        for v in [getattr(obj, f.name)]
    }


def _typed(cls: type[Any], data: dict[str, Any]) -> Any:
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        default = f.default if f.default is not dataclasses.MISSING else None
        if isinstance(default, Decimal) or f.type in ("Decimal", Decimal):
            value = Decimal(str(value))
        kwargs[f.name] = value
    return cls(**kwargs)


def account_state(engine: SimEngine, account: SimAccount) -> dict[str, Any]:
    """``account`` and the engine's replay position as JSON-ready data."""
    return {
        "version": STATE_VERSION,
        "last_step_ms": engine.last_step_ms,
        "exec_seq": engine._exec_seq,
        "wallet": {coin: str(v) for coin, v in account.wallet.items()},
        "cum_realised": str(account.cum_realised),
        "orders": [_plain(o) for o in account.orders.values()],
        "executions": list(account.executions),
        "positions": [_plain(p) for p in account.positions.values()],
        "leverage": {s: str(v) for s, v in account.leverage.items()},
    }


def restore_account(engine: SimEngine, account: SimAccount, state: dict[str, Any]) -> None:
    """Put ``state`` (from ``account_state``) back into ``account`` of a freshly built ``engine``.

    The engine resumes matching from the saved replay position, so resting stops that the market
    crossed while the process was down fill on the next step, as on a venue that kept running.
    """
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"paper wallet state version {state.get('version')!r}; this autotrader reads {STATE_VERSION}")
    account.wallet = {coin: Decimal(v) for coin, v in state["wallet"].items()}
    account.cum_realised = Decimal(state["cum_realised"])
    account.orders = {}
    account.live = {}
    account.links = {}
    for data in state["orders"]:
        account.add_order(_typed(SimOrder, data))
    account.executions = []
    account.executions_by_order = {}
    for execution in state["executions"]:
        account.add_execution(dict(execution))
    account.positions = {p["symbol"]: _typed(SimPosition, p) for p in state["positions"]}
    account.leverage = {s: Decimal(v) for s, v in state["leverage"].items()}
    engine._exec_seq = max(engine._exec_seq, int(state["exec_seq"]))
    engine.last_step_ms = min(engine.last_step_ms, int(state["last_step_ms"]))
