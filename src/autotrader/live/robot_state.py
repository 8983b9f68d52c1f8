"""What the robot's parts share: its settings and ports, and the trading state ``Robot.start`` creates.

    state = RobotState(config, limits, settings, lev, store, clock, metrics, kill_switch, market_view, risk)
    BarClose(state, ...), RobotExits(state, ...), SignalIntake(state, ...)   # each reads it

``Robot.start`` fills the book, the order manager, the risk state and the instruments in this
object, in place, so every part sees them; the parts never hold the robot itself. What they ask
of the robot (record an exchange fault, mark the book, whether entries pause) comes in as the
callables named here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from autotrader.domain.aligned import AlignedCandles
from autotrader.domain.instrument import Instrument
from autotrader.live.decider import Pause, Settings
from autotrader.live.market_view import MarketView
from autotrader.live.metrics import RobotMetrics
from autotrader.live.order_manager import OrderManager
from autotrader.live.portfolio import Book
from autotrader.live.ports import Clock, StateStore
from autotrader.live.risk_state import KillSwitch, RiskState, RiskTransition
from autotrader.live.robot_config import RobotConfig
from autotrader.risk.limits import RiskLimits
from autotrader.signals.intake import SignalSource
from autotrader.strategy.base import Strategy

ExchangeFault = Callable[[str, Exception], None]
"""Count, log and record a passing exchange problem met during ``where`` (``Robot.exchange_fault``)."""

StoreFault = Callable[[str, Exception], None]
"""Count and log a failed state store transaction met during ``where`` (``Robot.store_fault``)."""

MarkBook = Callable[[dict[str, float], int], list[RiskTransition]]
"""Mark the book at ``prices`` as of a time into the risk state and record it (``Robot.mark``)."""

EntryPause = Callable[[], Pause | None]
"""The robot's own reason to pause entries now, if any (``Robot.pause``)."""


@dataclass(eq=False)
class RobotState:
    """One robot's shared state: read by its parts, filled in place by ``Robot.start``."""

    config: RobotConfig
    limits: RiskLimits
    settings: Settings  # the decider's settings
    lev: float  # the leverage (1 on spot)
    store: StateStore
    clock: Clock
    metrics: RobotMetrics
    kill_switch: KillSwitch
    market_view: MarketView  # prices and closed bars
    risk: RiskState
    signals: SignalSource | None = None  # the deliveries to decide (``None``: a strategy's signals only)
    strategy: Strategy | None = None  # its signals are decided at every bar close
    instruments: dict[str, Instrument] = field(default_factory=dict)
    book: Book | None = None  # from ``Robot.start``
    om: OrderManager | None = None  # from ``Robot.start``
    last_bar_ts: int = -1  # the open time of the last closed bar handled
    tf_ms: int = field(init=False)  # the bar length

    def __post_init__(self) -> None:
        self.tf_ms = self.config.tf.ms

    @property
    def symbols(self) -> tuple[str, ...]:
        """The symbols the robot trades (``RobotConfig.symbols``)."""
        return self.config.symbols

    @property
    def history(self) -> AlignedCandles | None:
        """The closed bars of every symbol (``MarketView.history``)."""
        return self.market_view.history


__all__ = ["EntryPause", "ExchangeFault", "MarkBook", "RobotState", "StoreFault"]
