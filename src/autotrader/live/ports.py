"""The robot's ports: the state store and the clock (implemented at the edge, injected).

``StateStore`` is synchronous on purpose: each call is one short transaction (SQLite WAL or
PostgreSQL), and ordering matters more than overlap: a write returns only once it is durable
against a process crash, so "persist, then call the exchange" holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Protocol

from autotrader.domain.orders import Fill, Order
from autotrader.live.records import (
    ClosedTrade,
    DeadLetter,
    Decision,
    EquitySnapshot,
    Heartbeat,
    Intent,
    IntentStatus,
    Ledger,
    Outcome,
    PositionState,
    RiskSnapshot,
    RobotEvent,
    StoredFill,
    StoredOrder,
)


class Clock(Protocol):
    """Where "now" comes from: the wall in production, the venue's market clock in replays.

    Implementations: ``autotrader.live.clock`` (``WallClock``, ``VenueClock``, ``FunctionClock``).
    """

    def now_ms(self) -> int:
        """UTC epoch milliseconds."""
        ...

    async def refresh(self) -> None:
        """Re-read the clock's source (a no-op for the wall)."""
        ...


class StateStore(Protocol):
    """Everything the robot persists. Every method is one transaction."""

    # ---- signals
    def seen(self, signal_id: str) -> bool:
        """True when a decision for ``signal_id`` is persisted."""
        ...

    def record_decision(self, decision: Decision, actions: Sequence[tuple[Intent, Order | None]] = ()) -> bool:
        """The decision, and the intents and first orders it created, in one transaction.

        Returns ``False`` (writing nothing) when ``decision.signal_id`` is already decided.
        """
        ...

    def update_decision(
        self, signal_id: str, outcome: Outcome, reason: str, detail: str = "", *, client_order_id: str | None = None
    ) -> None:
        """Change a decision's outcome (only if it names ``client_order_id``, when given)."""
        ...

    def record_dead_letter(self, letter: DeadLetter) -> bool:
        """Record an invalid message once per ``source`` position; ``False`` for a redelivery."""
        ...

    def signals_to_score(self, until_ms: int, limit: int = 1000) -> list[Decision]:
        """Acted-on decisions whose horizon is over by ``until_ms`` and that are not scored yet."""
        ...

    def score_signal(self, signal_id: str, horizon_price: float) -> None: ...

    # ---- intents and orders
    def save_intent(self, intent: Intent, order: Order | None = None, position: PositionState | None = None) -> None:
        """A new intent, its first order (INITIALIZED) and the position it changes, in one transaction."""
        ...

    def close_intent(self, intent_id: str, status: IntentStatus, reason: str = "") -> None: ...

    def save_order(self, order: Order, event: str, detail: str = "", *, intent_id: str | None = None) -> None:
        """Insert or update ``order`` and append ``event`` to its history."""
        ...

    def record_fill(
        self,
        fill: Fill,
        order: Order,
        position: PositionState,
        ledger: Ledger,
        trade: ClosedTrade | None = None,
    ) -> bool:
        """The fill (unique by ``fill_id``) with the order, position, cash and closed trade it led to.

        Returns ``False`` (and changes nothing) when the fill is already stored.
        """
        ...

    def save_position(self, position: PositionState) -> None: ...

    def load_orders(self, open_only: bool = True) -> list[StoredOrder]: ...

    def load_order(self, client_order_id: str) -> StoredOrder | None: ...

    def load_intents(self, open_only: bool = True) -> list[Intent]: ...

    def load_fills(self, since_ms: int | None = None) -> list[StoredFill]: ...

    def has_fill(self, fill_id: str) -> bool: ...

    def last_fill_ms(self) -> int | None:
        """Time of the newest recorded fill (``None`` before the first)."""
        ...

    def load_positions(self) -> dict[str, PositionState]: ...

    def load_ledger(self) -> Ledger | None: ...

    def save_ledger(self, ledger: Ledger) -> None: ...

    def load_trades(self, since_ms: int | None = None) -> list[ClosedTrade]: ...

    # ---- risk, equity, heartbeat, events, settings
    def save_risk(self, snapshot: RiskSnapshot) -> None: ...

    def load_risk(self) -> RiskSnapshot | None: ...

    def snapshot_equity(self, snapshot: EquitySnapshot) -> None: ...

    def equity_series(self, since_ms: int | None = None) -> list[EquitySnapshot]: ...

    def equity_thinned(self, max_points: int) -> tuple[list[EquitySnapshot], int]:
        """At most about ``max_points`` snapshots (each bucket's lowest and highest) and the total count."""
        ...

    def heartbeat(self, beat: Heartbeat) -> None: ...

    def last_heartbeat(self) -> Heartbeat | None: ...

    def record_event(self, event: RobotEvent) -> None: ...

    def events(
        self, since_ms: int | None = None, kinds: Sequence[str] | None = None, latest: int | None = None
    ) -> list[RobotEvent]: ...

    def decisions(self, since_ms: int | None = None, latest: int | None = None) -> list[Decision]: ...

    def dead_letters(self, since_ms: int | None = None) -> list[DeadLetter]: ...

    def set_meta(self, key: str, value: Any) -> None: ...

    def get_meta(self, key: str) -> Any: ...

    def close(self) -> None: ...


def decimal_or_none(value: str | None) -> Decimal | None:
    return Decimal(value) if value not in (None, "") else None
