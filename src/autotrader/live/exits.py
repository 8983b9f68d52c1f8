"""Exit levels of one position: stop-loss, take-profit and trailing stop, as the backtest kernel sets them.

Pure arithmetic shared by the robot's resting orders and its robot-side exits (no I/O):

* the stop-loss and the target derive from the entry fill price and are rounded to the tick
  (``round_to_tick_nb``, the kernel's step 1b);
* a trailing stop follows the best price seen since the entry (``trail_ref``, starting at the
  entry price): a long's level is ``trail_ref × (1 - trailing)``, a short's ``trail_ref × (1 + trailing)``,
  rounded to the tick; the protective stop is the tighter of it and the stop-loss, and only ever
  tightens (``trailing_stop_level_nb``, the level the kernel's step 2 tests each bar against and
  ratchets with the bar's extreme after checking it);
* a stop whose level is no longer the initial stop-loss exits as ``trailing_stop``, else as
  ``stop_loss``; a target exits as ``take_profit`` (the backtest's ``EXIT_REASONS``).
"""

from __future__ import annotations

from autotrader.risk.rules import round_to_tick_nb, trailing_stop_level_nb

STOP_LOSS = "stop_loss"
TAKE_PROFIT = "take_profit"
TRAILING_STOP = "trailing_stop"


def initial_stop(entry: float, side: int, stop_loss: float | None, tick: float) -> float:
    """The stop-loss level set at the entry (0.0: no stop-loss)."""
    if not stop_loss:
        return 0.0
    return round_to_tick_nb(entry * (1.0 - stop_loss) if side > 0 else entry * (1.0 + stop_loss), tick)


def target_level(entry: float, side: int, take_profit: float | None, tick: float) -> float:
    """The take-profit level (0.0: none, or a short's target at or below zero)."""
    if not take_profit:
        return 0.0
    level = round_to_tick_nb(entry * (1.0 + take_profit) if side > 0 else entry * (1.0 - take_profit), tick)
    return level if level > 0.0 else 0.0


def ratchet(trail_ref: float, side: int, high: float, low: float) -> float:
    """The best price seen so far after a bar with ``high``/``low`` (a long's highest, a short's lowest)."""
    return max(trail_ref, high) if side > 0 else min(trail_ref, low)


def stop_level(init_stop: float, trail_ref: float, side: int, trailing: float | None, tick: float) -> float:
    """The protective stop: the stop-loss tightened by the trailing stop (0.0: neither is set)."""
    level = trailing_stop_level_nb(float(init_stop), float(trail_ref), int(side), float(trailing or 0.0), float(tick))
    return float(level)  # the kernel's level, to the tick


def stop_reason(level: float, init_stop: float) -> str:
    """``trailing_stop`` once the stop moved away from the initial stop-loss, else ``stop_loss``."""
    return TRAILING_STOP if abs(level - init_stop) > 1e-12 * max(1.0, abs(level)) else STOP_LOSS


def exit_hit(side: int, price: float, stop: float, target: float) -> str | None:
    """Which robot-side exit ``price`` reaches (the stop first, as the kernel assumes); ``None``: neither.

    ``stop``/``target`` of 0.0 mean "not set" (or resting at the venue). The caller names a stop
    ``stop_loss`` or ``trailing_stop`` with ``stop_reason``.
    """
    if side > 0:
        if stop > 0.0 and price <= stop:
            return "stop"
        if target > 0.0 and price >= target:
            return TAKE_PROFIT
    elif side < 0:
        if stop > 0.0 and price >= stop:
            return "stop"
        if target > 0.0 and price <= target:
            return TAKE_PROFIT
    return None
