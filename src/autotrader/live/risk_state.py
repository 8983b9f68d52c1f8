"""The risk engine's run-time state: peak and day-start equity, ACTIVE / DAILY_BLOCKED / HALTED, Kelly stats.

The transitions are the backtest's: marking calls ``autotrader.risk.policy.roll_day_nb`` and ``mark_risk_nb``,
a closed trade ``kelly_update_nb``, the functions the kernel's step 3 calls. A daily loss beyond
``daily_loss`` blocks entries until the next UTC day; a drawdown beyond ``max_drawdown`` from the
peak halts entries for good (and, with
``flatten_on_halt``, closes every position). The day starts at 00:00 UTC: the first mark of a new
day takes the previous mark's equity as the day's start, as the kernel does at a day's first bar.

The kill switch is separate from the limits: a file (``KillSwitch.path``) or a flag set through
the robot's HTTP endpoint pauses entries at once, whatever the state; exits still go out.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

from autotrader.domain.errors import StorageError
from autotrader.live.records import ClosedTrade, RiskSnapshot
from autotrader.risk.limits import RiskLimits
from autotrader.risk.policy import Transition, kelly_update_nb, mark_risk_nb, roll_day_nb, transitions_of
from autotrader.risk.rules import ACTIVE

DAY_MS = 86_400_000


class KillNotPersisted(StorageError):
    """The kill switch is engaged in memory, but its file could not be written (it will not survive a restart)."""


class KillSwitch:
    """Entries paused while ``path`` exists or ``engage()`` was called (until ``release()``).

    ``engage()`` writes the file too (marked as the endpoint's), so a switch thrown through the
    endpoint holds across restarts. ``release()`` removes only a file the endpoint wrote: a file
    the operator created stays, and keeps pausing entries, until the operator deletes it.
    """

    ENDPOINT_MARK = "# autotrader: kill switch engaged through the robot's endpoint"

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._flag = False
        self.reason = ""

    def engage(self, reason: str = "endpoint") -> None:
        """Pause entries now; with a ``path`` the switch is the file, so it survives a restart.

        Raises ``KillNotPersisted`` (entries stay paused, in memory only) when the file cannot be written.
        """
        self._flag = True
        self.reason = reason
        if self.path is None or self.path.exists():  # an existing file (the operator's, maybe) is left as it is
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return  # created meanwhile (by the operator): it pauses entries as it is
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(f"{self.ENDPOINT_MARK}\n{reason}\n")
        except OSError as e:
            raise KillNotPersisted(
                f"kill switch engaged, but {self.path} could not be written ({e.strerror}): "
                "entries are paused in memory only, until this robot stops"
            ) from None

    def release(self) -> bool:
        """Clear the endpoint's switch; ``True`` when entries may resume (no operator's file remains)."""
        self._flag = False
        self.reason = ""
        if self.path is None:
            return True
        with contextlib.suppress(FileNotFoundError):
            if self.endpoint_file():
                self.path.unlink()
        return not os.path.exists(self.path)

    def endpoint_file(self) -> bool:
        """True when ``path`` exists and was written by ``engage()`` (here or before a restart)."""
        if self.path is None:
            return False
        try:
            with open(self.path, encoding="utf-8", errors="replace") as f:
                return f.readline().rstrip("\n") == self.ENDPOINT_MARK
        except OSError:
            return False

    @property
    def engaged(self) -> bool:
        if self._flag:
            return True
        return self.path is not None and os.path.exists(self.path)

    def why(self) -> str:
        if self._flag:
            return f"kill switch engaged ({self.reason})"
        return f"kill switch file {self.path} exists"


@dataclass(frozen=True, slots=True)
class RiskTransition:
    """A state change caused by marking equity (recorded as an event)."""

    transition: Transition
    detail: str

    @property
    def kind(self) -> str:
        """The transition's label (``daily_reset`` / ``daily_loss_hit`` / ``drawdown_halt``), the event kind."""
        return self.transition.label


@dataclass(frozen=True, slots=True)
class LimitUsage:
    """One limit against its current use (for ``--mode=status``)."""

    name: str
    used: float
    limit: float
    unit: str = "%"
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.used / self.limit if self.limit else 0.0


class RiskState:
    """The mutable run-time risk state of one robot (persist ``snapshot()`` after every change)."""

    def __init__(self, limits: RiskLimits, capital: float, snapshot: RiskSnapshot | None = None) -> None:
        self.limits = limits
        if snapshot is None:
            self.state = ACTIVE
            self.peak_equity = capital
            self.day_start_equity = capital
            self.day_start_ms = -1
            self.last_equity = capital
            self.halted_reason = ""
            self.updated_ms = 0
        else:
            self.state = snapshot.state
            self.peak_equity = snapshot.peak_equity
            self.day_start_equity = snapshot.day_start_equity
            self.day_start_ms = snapshot.day_start_ms
            self.last_equity = snapshot.last_equity
            self.halted_reason = snapshot.halted_reason
            self.updated_ms = snapshot.updated_ms
        self.n_wins = 0
        self.n_losses = 0
        self.sum_win = 0.0
        self.sum_loss = 0.0

    # ---------------------------------------------------------------------------------- trades

    def record_trade(self, trade: ClosedTrade) -> None:
        """Closed-trade statistics for Kelly sizing (the kernel's definition of a trade's return)."""
        self.n_wins, self.n_losses, self.sum_win, self.sum_loss = kelly_update_nb(
            trade.return_fraction, self.n_wins, self.n_losses, self.sum_win, self.sum_loss
        )

    def load_trades(self, trades: list[ClosedTrade]) -> None:
        for trade in trades:
            self.record_trade(trade)

    # ---------------------------------------------------------------------------------- marking

    def mark(self, equity: float, as_of_ms: int) -> list[RiskTransition]:
        """Mark equity at ``as_of_ms`` (the shared ``roll_day_nb``, ``mark_risk_nb``); the changes made."""
        if not math.isfinite(equity):
            return []
        if self.day_start_ms < 0:  # the first mark ever: today is the current day, started at the capital
            self.day_start_ms = as_of_ms // DAY_MS * DAY_MS
        state, day_start_equity, next_day_ms, reset = roll_day_nb(
            self.state, as_of_ms, self.day_start_ms + DAY_MS, self.last_equity, self.day_start_equity
        )
        state, peak, _, moves = mark_risk_nb(
            state,
            equity,
            self.peak_equity,
            day_start_equity,
            as_of_ms,
            0,
            self.limits.daily_loss,
            self.limits.max_drawdown,
            0,  # the robot's halt is for good: an operator resumes it
        )
        self.state, self.peak_equity, self.day_start_equity = int(state), float(peak), float(day_start_equity)
        self.day_start_ms = int(next_day_ms) - DAY_MS
        mask = int(moves) | (Transition.DAILY_RESET.bit if reset else 0)
        out = [RiskTransition(tr, self._detail(tr, equity)) for tr in transitions_of(mask)]
        for tr in out:
            if tr.transition is Transition.DRAWDOWN_HALT:
                self.halted_reason = tr.detail
        self.last_equity = equity
        self.updated_ms = as_of_ms
        return out

    def _detail(self, transition: Transition, equity: float) -> str:
        if transition is Transition.DRAWDOWN_HALT:
            return (
                f"drawdown {self.drawdown(equity):.2%} from the peak {self.peak_equity:.2f} reached the "
                f"{self.limits.max_drawdown:.0%} limit"
            )
        if transition is Transition.DAILY_LOSS_HIT:
            return (
                f"today's loss {self.daily_loss(equity):.2%} reached the {self.limits.daily_loss:.0%} "
                "limit: entries blocked until 00:00 UTC"
            )
        if transition is Transition.DAILY_RESET:
            return f"new UTC day: entries allowed again at {equity:.2f}"
        return f"entries allowed again at {equity:.2f}"

    def drawdown(self, equity: float | None = None) -> float:
        eq = self.last_equity if equity is None else equity
        return max(0.0, 1.0 - eq / self.peak_equity) if self.peak_equity > 0 else 0.0

    def daily_loss(self, equity: float | None = None) -> float:
        eq = self.last_equity if equity is None else equity
        return max(0.0, 1.0 - eq / self.day_start_equity) if self.day_start_equity > 0 else 0.0

    def snapshot(self, kill_switch: bool = False) -> RiskSnapshot:
        return RiskSnapshot(
            state=self.state,
            peak_equity=self.peak_equity,
            day_start_equity=self.day_start_equity,
            day_start_ms=self.day_start_ms,
            last_equity=self.last_equity,
            updated_ms=self.updated_ms,
            halted_reason=self.halted_reason,
            kill_switch=kill_switch,
        )

    def usage(
        self, equity: float, max_position_fraction: float, gross_exposure: float, correlation: float, leverage: float
    ) -> list[LimitUsage]:
        """Every limit against its current use."""
        lim = self.limits
        out = [
            LimitUsage("position size", 100 * max_position_fraction, 100 * lim.position_size, "% of equity"),
            LimitUsage("daily loss", 100 * self.daily_loss(equity), 100 * lim.daily_loss, "%"),
            LimitUsage("drawdown", 100 * self.drawdown(equity), 100 * lim.max_drawdown, "%"),
            LimitUsage("correlation", correlation, lim.correlation, "", "exposure-weighted average"),
            LimitUsage("leverage", leverage, lim.max_leverage, "x"),
        ]
        if lim.stop_loss is not None:
            out.append(
                LimitUsage("stop-loss distance", 100 * lim.stop_loss, 100 * lim.stop_loss, "%", "on the exchange")
            )
        out.append(LimitUsage("gross exposure", 100 * gross_exposure, 100.0, "% of equity", "informational"))
        return out
