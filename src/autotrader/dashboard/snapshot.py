"""What the dashboard shows, read from the state store: one JSON-ready dict per refresh.

Every figure comes from the store: the equity, P&L, drawdown, positions and limit usage are those
of ``autotrader.live.status.risk_management`` (the ``--mode=status`` report), the rest are the
store's own records. Numbers are JSON numbers (``None`` where there is none, never NaN), times
are UTC epoch milliseconds (``*_ms``) with an ISO-8601 twin (``*_at``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from autotrader.live.ports import StateStore
from autotrader.live.records import Decision, EquitySnapshot, RobotEvent, StoredOrder
from autotrader.live.status import OpenPosition, RiskManagement, risk_management

MAX_CURVE_POINTS = 2000
LATEST_SIGNALS = 50
LATEST_EVENTS = 20
# Rows of the usage table that describe a setting rather than a limit being used up: never "breached".
INFORMATIONAL_LIMITS = frozenset({"stop-loss distance", "gross exposure"})
# The position-size limit caps an entry; fixed sizing enters AT it and a held position drifts with its price,
# so only a position well above the cap (more than lot rounding and price drift explain) is shown as a breach.
POSITION_SIZE_BREACH_RATIO = 1.10


def is_informational(name: str) -> bool:
    """A usage row that describes a setting or a position's state, never a breach."""
    return name in INFORMATIONAL_LIMITS or name.startswith("stop-loss distance")


def is_breached(name: str, ratio: float | None) -> bool:
    """Colours mean breach only: a limit used up (loss limits at 100 %), a position well above its cap."""
    if ratio is None or is_informational(name):
        return False
    return ratio > POSITION_SIZE_BREACH_RATIO if name == "position size" else ratio >= 1.0


_VOLATILE_KEYS = ("generated_ms", "generated_at")


def build_snapshot(store: StateStore, now_wall_ms: int) -> dict[str, Any]:
    """The dashboard's view of the robot at ``now_wall_ms`` (wall clock, UTC epoch ms)."""
    block = risk_management(store, now_wall_ms)
    series, total_points = store.equity_thinned(MAX_CURVE_POINTS)
    decisions = store.decisions(latest=LATEST_SIGNALS)
    events = store.events(latest=LATEST_EVENTS)
    orders = store.load_orders(open_only=True)
    beat = block.heartbeat
    has_data = beat is not None or block.cash is not None or bool(series) or bool(decisions)
    snapshot = {
        "generated_ms": now_wall_ms,
        "generated_at": iso_ms(now_wall_ms),
        "has_data": has_data,
        "robot": _robot(block, now_wall_ms),
        "account": {
            "capital": _num(block.capital),
            "equity": _num(block.equity) if has_data else None,
            "cash": _num(block.cash),
            "exposure": _num(block.exposure),
            "today_pnl": _num(block.today_pnl),
            "drawdown": _num(block.drawdown),
            "peak_equity": _num(block.peak_equity),
        },
        "equity_curve": equity_curve(series, total=total_points),
        "positions": [_position(p) for p in block.positions],
        "orders": [_order(o) for o in orders],
        "signals": [_signal(d) for d in reversed(decisions[-LATEST_SIGNALS:])],
        "risk": _risk(block),
        "faults": dict(block.faults),
        "fault_count": sum(block.faults.values()),
        "events": [_event(e) for e in reversed(events[-LATEST_EVENTS:])],
    }
    return snapshot


def fingerprint(snapshot: dict[str, Any]) -> str:
    """A digest of everything in ``snapshot`` except when it was generated (equal digests: nothing changed)."""
    stable = {k: v for k, v in snapshot.items() if k not in _VOLATILE_KEYS}
    robot = dict(stable.get("robot") or {})
    robot.pop("heartbeat_age_s", None)
    stable["robot"] = robot
    return hashlib.sha256(to_json(stable).encode()).hexdigest()


def to_json(value: Any) -> str:
    """Compact JSON, one line (an SSE ``data:`` field), refusing NaN."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False, default=str)


def iso_ms(ms: int | None) -> str | None:
    """``2024-01-01T00:00:00.000Z`` for epoch milliseconds (``None`` stays ``None``)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def equity_curve(
    series: Sequence[EquitySnapshot], max_points: int = MAX_CURVE_POINTS, total: int | None = None
) -> dict[str, Any]:
    """The equity series, thinned to at most ``max_points``.

    Long series keep the first and last point and, of every bucket in between, its lowest and
    highest equity (in time order), so drawdowns and peaks survive the thinning. ``total`` is the
    length of the stored series when ``series`` was already thinned by the store.
    """
    kept = list(series) if len(series) <= max_points else _min_max_thinned(series, max_points)
    return {
        "points": len(kept),
        "total": len(series) if total is None else total,
        "ts_ms": [e.ts_ms for e in kept],
        "equity": [_num(e.equity) for e in kept],
    }


def _min_max_thinned(series: Sequence[EquitySnapshot], max_points: int) -> list[EquitySnapshot]:
    inner = series[1:-1]
    buckets = max(1, (max_points - 2) // 2)
    size = math.ceil(len(inner) / buckets)
    kept = [series[0]]
    for start in range(0, len(inner), size):
        chunk = inner[start : start + size]
        low = min(range(len(chunk)), key=lambda i: chunk[i].equity)
        high = max(range(len(chunk)), key=lambda i: chunk[i].equity)
        kept.extend(chunk[i] for i in sorted({low, high}))
    kept.append(series[-1])
    return kept


# ------------------------------------------------------------------------------------------- parts


def _robot(block: RiskManagement, now_wall_ms: int) -> dict[str, Any]:
    beat = block.heartbeat
    halted = block.state == "HALTED"
    if beat is None:
        status = "none"
    elif halted:
        status = "halted"
    elif block.alive:
        status = "alive"
    else:
        status = "stopped" if beat.status == "stopped" else "stale"
    return {
        "name": beat.robot if beat else None,
        "mode": block.mode or (beat.mode if beat else None),
        "status": status,
        "alive": block.alive,
        "pid": beat.pid if beat else None,
        "process_status": beat.status if beat else None,
        "detail": beat.detail if beat else "",
        "heartbeat_ms": beat.wall_ms if beat else None,
        "heartbeat_at": iso_ms(beat.wall_ms) if beat else None,
        "heartbeat_age_s": (now_wall_ms - beat.wall_ms) / 1000 if beat else None,
        "market_ms": beat.ts_ms if beat else None,
        "market_at": iso_ms(beat.ts_ms) if beat else None,
    }


def _risk(block: RiskManagement) -> dict[str, Any]:
    usage = []
    for u in block.usage:
        ratio = _num(u.ratio)
        informational = is_informational(u.name)
        usage.append(
            {
                "name": u.name,
                "used": _num(u.used),
                "limit": _num(u.limit),
                "unit": u.unit,
                "note": u.note,
                "ratio": ratio,
                "informational": informational,
                "breached": is_breached(u.name, ratio),
            }
        )
    return {
        "state": block.state,
        "halted": block.state == "HALTED",
        "halted_reason": block.halted_reason,
        "kill_switch": block.kill_switch,
        "min_confidence": _num(block.min_confidence),
        "usage": usage,
    }


def _position(p: OpenPosition) -> dict[str, Any]:
    return {
        "symbol": p.symbol,
        "side": "long" if p.qty > 0 else "short",
        "qty": _num(p.qty),
        "entry_price": _num(p.entry_price),
        "price": _num(p.price),
        "value": _num(p.value),
        "unrealised": _num(p.unrealised),
        "stop": _num(p.stop),
        "stop_where": p.stop_where,  # "exchange", "robot-side" (the exchange refused it) or None
        "stop_kind": p.stop_kind,  # "trailing" (tighter than the initial stop-loss), "initial" or None
        "stop_distance": _num(p.stop_distance),  # fraction of the price left to the stop
        "take_profit": _num(p.take_profit),
        "take_profit_where": p.take_profit_where,  # "exchange", "robot-side" or None
        "take_profit_distance": _num(p.take_profit_distance),
        "since_ms": p.since or None,
        "since_at": iso_ms(p.since) if p.since else None,
    }


def _order(stored: StoredOrder) -> dict[str, Any]:
    o = stored.order
    return {
        "client_order_id": o.client_order_id,
        "symbol": o.symbol,
        "side": str(o.side),
        "type": str(o.type),
        "kind": str(stored.kind),
        "qty": _num(o.qty),
        "filled_qty": _num(o.filled_qty),
        "price": _num(o.price),
        "trigger_price": _num(o.trigger_price),
        "status": str(o.status),
        "reduce_only": o.reduce_only,
        "signal_id": stored.signal_id,
        "created_ms": o.created_ms,
        "created_at": iso_ms(o.created_ms),
        "updated_ms": o.updated_ms,
        "updated_at": iso_ms(o.updated_ms),
    }


def _signal(d: Decision) -> dict[str, Any]:
    return {
        "signal_id": d.signal_id,
        "symbol": d.symbol,
        "direction": d.direction,
        "direction_label": {1: "long", -1: "short"}.get(d.direction, "flat"),
        "confidence": _num(d.confidence),
        "outcome": str(d.outcome),
        "reason": d.reason,
        "detail": d.detail,
        "client_order_id": d.client_order_id,
        "model": d.model,
        "price": _num(d.price) or None,
        "correct": d.correct,
        "signal_ms": d.signal_ts,
        "signal_at": iso_ms(d.signal_ts),
        "decided_ms": d.decided_ms,
        "decided_at": iso_ms(d.decided_ms),
    }


def _event(e: RobotEvent) -> dict[str, Any]:
    return {"ts_ms": e.ts_ms, "at": iso_ms(e.ts_ms), "kind": e.kind, "symbol": e.symbol, "detail": e.detail}


def _num(value: float | Decimal | None) -> float | None:
    """A JSON number: Decimals as floats, NaN and infinities as ``None``."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
