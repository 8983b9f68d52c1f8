"""What the robot writes to its state store: frozen records, one per fact.

Quantities and prices that must reconcile with the exchange are ``Decimal``; statistics
(equity, confidence, fractions) are ``float``. Times are UTC epoch milliseconds (``*_ms``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from autotrader.domain.orders import ZERO, Fill, Order, OrderSide


class Outcome(StrEnum):
    """What the robot did with one signal (every accepted signal gets exactly one)."""

    ENTRY = "entry"  # an entry order was created for it
    EXIT = "exit"  # an exit order was created for it
    SKIPPED = "skipped"  # nothing was traded; ``reason`` says why


class IntentKind(StrEnum):
    ENTRY = "entry"
    EXIT = "exit"
    STOP = "stop"  # the exchange-resting stop-loss (or trailing stop) of a position
    TARGET = "target"  # the exchange-resting take-profit of a position
    ADOPTED = "adopted"  # an order with our prefix found at the venue but unknown locally


class IntentStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    ABANDONED = "abandoned"


@dataclass(frozen=True, slots=True)
class Decision:
    """The persisted decision about one signal (``signal_id`` is unique: the dedupe key)."""

    signal_id: str
    symbol: str
    direction: int  # +1 long, -1 short, 0 flat
    confidence: float
    signal_ts: int
    horizon: str
    model: str
    source: str  # ``topic[partition]@offset`` or ``strategy:<name>``
    received_ms: int
    decided_ms: int
    outcome: Outcome
    reason: str = ""
    detail: str = ""
    client_order_id: str | None = None
    raw: str = ""
    price: float = 0.0  # the symbol's price when decided
    expires_ms: int = 0  # signal_ts + horizon: when its direction can be scored
    horizon_price: float | None = None  # the close at the horizon (scored later)

    @property
    def correct(self) -> bool | None:
        """Whether the price moved the signal's way by the horizon (``None``: not scored yet)."""
        if self.horizon_price is None or self.horizon_price <= 0 or not self.price or self.direction == 0:
            return None
        return (self.horizon_price - self.price) * self.direction > 0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An invalid signal message (it is also on the dead-letter topic)."""

    source: str
    received_ms: int
    reason: str
    detail: str
    raw: str


@dataclass(frozen=True, slots=True)
class Intent:
    """What a decision wants done; its orders carry ``intent_id``."""

    intent_id: str
    kind: IntentKind
    symbol: str
    side: OrderSide
    created_ms: int
    reason: str = ""  # signal / stop_loss / drawdown_halt / kill / reconcile ...
    signal_id: str | None = None
    fraction: float = 0.0
    decision_equity: float = 0.0
    reference_price: float = 0.0
    confidence: float = 0.0
    expires_ms: int | None = None  # an unsent entry/exit is abandoned after this
    status: IntentStatus = IntentStatus.OPEN
    status_reason: str = ""


@dataclass(frozen=True, slots=True)
class StoredOrder:
    """An order as the store holds it, with the intent it serves."""

    order: Order
    intent_id: str
    kind: IntentKind
    signal_id: str | None = None

    @property
    def client_order_id(self) -> str:
        return self.order.client_order_id


@dataclass(frozen=True, slots=True)
class PositionState:
    """The robot's holding in one symbol, from its fills.

    ``qty`` is signed and in base units net of fees paid in the base coin, so it equals what
    the exchange holds; ``avg_price`` is the cost per unit held, fees included.
    """

    symbol: str
    qty: Decimal = ZERO
    avg_price: Decimal = ZERO
    entry_ms: int = 0
    entry_fees: Decimal = ZERO  # quote
    entry_qty: Decimal = ZERO  # gross quantity bought/sold to open
    entry_value: Decimal = ZERO  # quote value of the opening fills (entry price = entry_value / entry_qty)
    exit_qty: Decimal = ZERO  # quantity closed so far
    exit_value: Decimal = ZERO  # quote received/paid for the closed part
    exit_fees: Decimal = ZERO  # quote
    entry_client_order_id: str | None = None
    signal_id: str | None = None
    confidence: float = 0.0
    stop_client_order_id: str | None = None
    stop_price: Decimal | None = None
    stop_attempt: int = 0
    updated_ms: int = 0

    @property
    def side(self) -> int:
        return 0 if self.qty == 0 else (1 if self.qty > 0 else -1)


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """A round trip, recorded when a position goes flat (``pnl`` net of all fees, in quote)."""

    symbol: str
    side: int
    qty: Decimal
    entry_ms: int
    exit_ms: int
    entry_price: Decimal
    exit_price: Decimal
    fees: Decimal
    pnl: Decimal
    exit_reason: str
    entry_client_order_id: str | None = None
    exit_client_order_id: str | None = None
    signal_id: str | None = None
    exit_signal_id: str | None = None
    confidence: float = 0.0

    @property
    def return_fraction(self) -> float:
        """``pnl / (qty × entry price)``, the kernel's definition (Kelly statistics use it)."""
        basis = self.qty * self.entry_price
        return float(self.pnl / basis) if basis > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Ledger:
    """Cash of the robot's capital (quote coin) and what it has paid and earned."""

    capital: Decimal
    cash: Decimal
    fees: Decimal = ZERO
    realised_pnl: Decimal = ZERO
    updated_ms: int = 0


@dataclass(frozen=True, slots=True)
class RiskSnapshot:
    """The run-time risk state, persisted on every change."""

    state: int  # ``autotrader.risk.rules.EngineState``
    peak_equity: float
    day_start_equity: float
    day_start_ms: int
    last_equity: float
    updated_ms: int
    halted_reason: str = ""
    kill_switch: bool = False


@dataclass(frozen=True, slots=True)
class EquitySnapshot:
    ts_ms: int
    equity: float
    cash: float
    exposure: float  # gross notional / equity
    peak_equity: float
    day_start_equity: float
    state: int


@dataclass(frozen=True, slots=True)
class Heartbeat:
    robot: str
    ts_ms: int
    wall_ms: int
    pid: int
    mode: str
    status: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class StoredFill:
    fill: Fill
    recorded_ms: int


@dataclass(frozen=True, slots=True)
class RobotEvent:
    ts_ms: int
    kind: str  # risk / fault / reconcile / kill_switch / start / stop ...
    detail: str
    symbol: str | None = None


@dataclass(frozen=True, slots=True)
class ReconcileSummary:
    """What one reconciliation pass found and did."""

    ok: bool
    adopted_fills: int = 0
    synced_orders: int = 0
    orphans_cancelled: int = 0
    stops_replaced: int = 0
    resumed: int = 0
    abandoned: int = 0
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
