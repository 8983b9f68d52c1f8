"""The compiled portfolio simulation loop (numba).

One pass over the bars; per bar and symbol, in this order:

1. **Open of bar t** - positions held from before ``t`` whose stop, liquidation or target the
   open already gapped through are closed at the open (the gap is not given back); then
   pending exits decided at ``t-1``'s close fill at the open; then pending entries fill at the
   open (exits first, so freed capital can be reused). Market orders pay slippage and the
   taker fee. Quantities are rounded down to the lot step; an order below the minimum quantity
   or notional is denied and recorded.
2. **Inside bar t** - stop-loss, trailing stop, liquidation and take-profit are checked against
   the bar's low and high. When a stop and a target are both inside the bar, the stop is
   assumed to come first (pessimistic). A trailing stop uses the level from before the bar,
   rounded to the tick as the robot rests it (``trailing_stop_level_nb``), and only then
   ratchets with the bar's extreme.
3. **Close of bar t** - positions are marked at the close; the risk engine state is updated
   (daily loss blocks entries until the next UTC day; a drawdown breach halts for good and,
   if configured, flattens at the next open); the strategy's signals for bar ``t`` go through
   the risk gate and become pending orders for ``t+1``'s open.

Accounting: ``wallet`` holds realised cash; a position is a signed quantity and an entry
price; equity = wallet + sum(qty * (price - entry)). Spot is long-only with leverage 1 and
entries are limited by free cash; linear (USDT perpetual) positions use isolated margin
(notional / leverage) and are liquidated when the price reaches the liquidation price. A
position's price loss plus its exit fee never exceeds its margin (a gap past the bankruptcy
price loses the margin, no more); a liquidation loses the whole margin (the exchange takes the
position over at its bankruptcy price, so fee and slippage cannot add to that loss).

When the robot is offline (``offline``) and stops do not rest on the exchange, no stop, trailing
stop or target fires, at the open or inside the bar; liquidation, which the exchange does, still
fires on every market and at every leverage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from autotrader.domain.instrument import Instrument, kernel_filters
from autotrader.jit import njit
from autotrader.risk.policy import (
    BIT_DAILY_LOSS_HIT,
    BIT_DRAWDOWN_HALT,
    BIT_HALT_RESUMED,
    EVENT_DAILY_LOSS_HIT,
    EVENT_DRAWDOWN_HALT,
    EVENT_HALT_RESUMED,
    Transition,
    exposure_vector_nb,
    kelly_update_nb,
    mark_risk_nb,
    roll_day_nb,
    signal_action_nb,
)
from autotrader.risk.rules import (
    ACTIVE,
    ALLOWED,
    DENY_NO_PRICE,
    HALTED,
    SIZING_VOLATILITY,
    Denial,
    decide_entry_nb,
    entry_quantity_nb,
    round_to_tick_nb,
    trailing_stop_level_nb,
)

DAY_MS = 86_400_000

# Exit reasons
EXIT_SIGNAL = 0
EXIT_STOP = 1
EXIT_TARGET = 2
EXIT_TRAILING = 3
EXIT_LIQUIDATION = 4
EXIT_KILL_SWITCH = 5
EXIT_END = 6

# Event codes: 1..99 are entry denials (``Denial``); 101.. are state changes (``Transition``,
# imported above from the shared policy: EVENT_DAILY_LOSS_HIT, EVENT_DRAWDOWN_HALT, EVENT_HALT_RESUMED).

EXIT_REASONS = ("signal", "stop_loss", "take_profit", "trailing_stop", "liquidation", "kill_switch", "end_of_data")

# One closed trade, as the kernel writes it and ``BacktestResult.trades`` holds it.
TRADE_DTYPE = np.dtype(
    [
        ("symbol", "U20"),
        ("side", "i1"),
        ("signal_ts", "i8"),
        ("entry_ts", "i8"),
        ("exit_ts", "i8"),
        ("entry_bar", "i8"),
        ("exit_bar", "i8"),
        ("entry_price", "f8"),
        ("exit_price", "f8"),
        ("qty", "f8"),
        ("entry_fee", "f8"),
        ("exit_fee", "f8"),
        ("pnl", "f8"),
        ("return_pct", "f8"),
        ("runup", "f8"),
        ("drawdown", "f8"),
        ("confidence", "f8"),
        ("exit_reason", "U16"),
    ]
)
SYMBOL_DTYPE = TRADE_DTYPE["symbol"]
_EXIT_REASON_TEXT = np.array(EXIT_REASONS, dtype=TRADE_DTYPE["exit_reason"])  # indexed by EXIT_* code

# One risk event (an entry denied, or a risk-state change); ``symbol`` is ``*`` for the portfolio.
EVENT_DTYPE = np.dtype([("ts", "i8"), ("symbol", "U20"), ("event", "U32")])
# event code -> name: the one vocabulary of denials and risk-state changes the robot shows too
EVENT_NAMES = {int(code): code.label for code in (*Denial, *Transition) if code != Denial.NONE}
_EVENT_TEXT = np.array(
    [EVENT_NAMES.get(code, str(code)) for code in range(max(EVENT_NAMES) + 1)], dtype=EVENT_DTYPE["event"]
)  # indexed by event code; frozen into the compiled kernel: clear numba's cache after renaming a code
_PORTFOLIO = np.array(["*"], dtype=SYMBOL_DTYPE)

# One symbol's venue filters, as the kernel reads them (``symbol_rules_of`` builds the table).
SYMBOL_RULES_DTYPE = np.dtype([("tick", "f8"), ("lot_step", "f8"), ("min_qty", "f8"), ("min_notional", "f8")])

# A run's scalar settings, one record (``autotrader.backtest.runner.kernel_settings`` builds it).
KERNEL_SETTINGS_DTYPE = np.dtype(
    [
        ("initial_cash", "f8"),
        ("fee_rate", "f8"),
        ("slippage", "f8"),  # a fraction of the price (bps / 10,000)
        ("linear", "?"),  # USDT perpetual (else spot: long-only, leverage 1)
        ("leverage", "f8"),
        ("maintenance_margin", "f8"),
        ("position_size", "f8"),
        ("stop_loss", "f8"),  # 0: none (likewise take_profit, trailing_stop)
        ("take_profit", "f8"),
        ("trailing_stop", "f8"),
        ("daily_loss", "f8"),
        ("max_drawdown", "f8"),
        ("corr_limit", "f8"),
        ("corr_window", "i8"),
        ("min_confidence", "f8"),
        ("sizing", "i8"),  # SIZING_FIXED / SIZING_KELLY / SIZING_VOLATILITY
        ("risk_per_trade", "f8"),
        ("kelly_share", "f8"),
        ("kelly_min_trades", "i8"),
        ("atr_multiple", "f8"),
        ("flatten_on_halt", "?"),
        ("max_volume_share", "f8"),  # 0: no cap
        ("stops_on_exchange", "?"),
        ("resume_after_ms", "i8"),  # 0: a drawdown halt is for good
    ]
)


def symbol_rules_of(instruments: Sequence[Instrument]) -> np.ndarray:
    """The ``SYMBOL_RULES_DTYPE`` table of the instruments' filters (``kernel_filters``), one row per symbol."""
    table = np.zeros(len(instruments), dtype=SYMBOL_RULES_DTYPE)
    for name, values in zip(SYMBOL_RULES_DTYPE.names or (), kernel_filters(instruments), strict=True):
        table[name] = values
    return table


@njit(cache=True)
def _close_position_nb(
    j,
    t,
    ts,
    symbols,
    price,
    reason,
    qty,
    entry_price,
    entry_bar,
    entry_fee,
    margin,
    hi_water,
    lo_water,
    conf,
    sig_bar,
    wallet,
    fee_rate,
    trades,
    n_trades,
    linear,
):  # pragma: no cover - compiled
    """Realise a position at ``price`` (slippage already applied) into ``trades[n_trades]``
    (a ``TRADE_DTYPE`` record; ``symbols`` empty leaves its symbol blank); return (wallet, n_trades).

    Linear positions are on isolated margin: the price loss and the exit fee together never
    take more than the position's margin (the entry fee was paid when it opened), so one
    position cannot push equity below zero. A liquidation loses the whole margin: the exchange
    takes the position over at its bankruptcy price (where the loss equals the margin), and
    the recorded exit price is that price whatever ``price`` was passed.
    """
    q = qty[j]
    if linear and reason == EXIT_LIQUIDATION:
        price = entry_price[j] - margin[j] / q  # bankruptcy price: entry -/+ entry / leverage
    fee = abs(q) * price * fee_rate
    pnl = q * (price - entry_price[j])
    if linear:
        pnl = max(pnl, -margin[j])  # isolated margin: the loss stops at the position's margin
        fee = min(fee, margin[j] + pnl)  # the exit fee only from what the margin still covers
    wallet += pnl - fee
    rec = trades[n_trades]
    if symbols.shape[0] > 0:
        rec.symbol = symbols[j]
    rec.side = 1 if q > 0 else -1
    rec.signal_ts = ts[sig_bar[j]]
    rec.entry_ts = ts[entry_bar[j]]
    rec.exit_ts = ts[t]
    rec.entry_bar = entry_bar[j]
    rec.exit_bar = t
    rec.entry_price = entry_price[j]
    rec.exit_price = price
    rec.qty = abs(q)
    rec.entry_fee = entry_fee[j]
    rec.exit_fee = fee
    net = pnl - fee - entry_fee[j]
    rec.pnl = net
    rec.return_pct = 100.0 * net / (abs(q) * entry_price[j])
    if q > 0:
        rec.runup = q * (hi_water[j] - entry_price[j])
        rec.drawdown = q * (lo_water[j] - entry_price[j])
    else:
        rec.runup = -q * (entry_price[j] - lo_water[j])
        rec.drawdown = -q * (entry_price[j] - hi_water[j])
    rec.confidence = conf[j]
    rec.exit_reason = _EXIT_REASON_TEXT[reason]
    qty[j] = 0.0
    margin[j] = 0.0
    return wallet, n_trades + 1


@njit(cache=True)
def signal_rows_nb(direction):  # pragma: no cover - compiled
    """(bars with any signal, number of signals) in one pass over the signal matrix."""
    n, m = direction.shape
    rows = np.zeros(n, dtype=np.bool_)
    count = 0
    for t in range(n):
        for j in range(m):
            if not math.isnan(direction[t, j]):
                rows[t] = True
                count += 1
    return rows, count


@njit(cache=True)
def _record_event_nb(events, n_events, ts, symbols, t, j, code):  # pragma: no cover - compiled
    """Write event ``code`` at bar ``t`` for symbol ``j`` (-1: the portfolio) into ``events[n_events]``."""
    if n_events < events.shape[0]:
        rec = events[n_events]
        rec.ts = ts[t]
        if symbols.shape[0] > 0:
            if j >= 0:
                rec.symbol = symbols[j]
            else:
                rec.symbol = _PORTFOLIO[0]
        rec.event = _EVENT_TEXT[code]
        return n_events + 1
    return n_events


@njit(cache=True)
def simulate_portfolio_into_nb(  # noqa: C901 - one loop, kept together on purpose
    ts,
    open_,
    high,
    low,
    close,
    volume,
    present,
    direction,
    signal_rows,
    confidence,
    atr_pct,
    symbol_rules,
    settings,
    offline,
    symbols,
    equity_out,
    exposure_out,
    trades,
    events,
):  # pragma: no cover - compiled
    """Simulate the portfolio into the caller's arrays; see the module docstring for the order of operations.

    ``symbol_rules`` holds each symbol's venue filters (``SYMBOL_RULES_DTYPE``), ``settings`` the
    run's costs, risk limits and sizing (one ``KERNEL_SETTINGS_DTYPE`` record; its fields are
    named as below).

    ``resume_after_ms`` > 0: a drawdown halt lasts that long, then trading resumes with the
    peak re-based on the equity of that bar (an operator's reset after a cooling-off period;
    recorded as ``EVENT_HALT_RESUMED``); 0 keeps a halt for good.

    ``signal_rows[t]`` is True when any symbol has a signal on bar ``t`` (lets quiet bars skip
    the signal scan). ``max_volume_share`` > 0 caps an entry's quantity at that share of the fill bar's volume.
    ``offline`` (per bar, or empty for "always online") marks bars when the trading robot is
    down: no signal is acted on and, unless ``stops_on_exchange``, no stop or target fires.

    Fills ``equity_out`` and ``exposure_out`` (gross notional / equity) per bar, ``trades``
    (``TRADE_DTYPE`` records, one per closed trade; room for every signal plus one per symbol;
    ``symbols`` names them, or is empty) and ``events`` (``EVENT_DTYPE`` records; events beyond
    its room are dropped). The outputs are the caller's so that a run's per-bar
    arrays come from numpy's allocator (huge pages: numba's own first-touch page faults cost
    several ns per bar on 1M bars). Returns ``(n_trades, n_events)``.
    """
    n, m = close.shape
    initial_cash = settings.initial_cash
    fee_rate = settings.fee_rate
    slippage = settings.slippage
    linear = settings.linear
    leverage = settings.leverage
    maintenance_margin = settings.maintenance_margin
    position_size = settings.position_size
    stop_loss = settings.stop_loss
    take_profit = settings.take_profit
    trailing_stop = settings.trailing_stop
    daily_loss = settings.daily_loss
    max_drawdown = settings.max_drawdown
    corr_limit = settings.corr_limit
    corr_window = settings.corr_window
    min_confidence = settings.min_confidence
    sizing = settings.sizing
    risk_per_trade = settings.risk_per_trade
    kelly_share = settings.kelly_share
    kelly_min_trades = settings.kelly_min_trades
    atr_multiple = settings.atr_multiple
    flatten_on_halt = settings.flatten_on_halt
    max_volume_share = settings.max_volume_share
    stops_on_exchange = settings.stops_on_exchange
    resume_after_ms = settings.resume_after_ms
    tick = np.empty(m)
    lot_step = np.empty(m)
    min_qty = np.empty(m)
    min_notional = np.empty(m)
    for j in range(m):
        tick[j] = symbol_rules[j].tick
        lot_step[j] = symbol_rules[j].lot_step
        min_qty[j] = symbol_rules[j].min_qty
        min_notional[j] = symbol_rules[j].min_notional
    has_offline = offline.shape[0] == n
    n_trades = 0
    n_events = 0

    qty = np.zeros(m)
    entry_price = np.zeros(m)
    entry_bar = np.zeros(m, dtype=np.int64)
    entry_fee = np.zeros(m)
    margin = np.zeros(m)
    stop = np.zeros(m)
    init_stop = np.zeros(m)
    target = np.zeros(m)
    liq = np.zeros(m)
    trail_ref = np.zeros(m)
    hi_water = np.zeros(m)
    lo_water = np.zeros(m)
    conf_at_entry = np.zeros(m)
    sig_bar = np.zeros(m, dtype=np.int64)
    last_close = np.full(m, np.nan)

    # orders decided at the previous close, to fill at this bar's open
    pend_exit = np.zeros(m, dtype=np.bool_)
    pend_exit_reason = np.zeros(m, dtype=np.int64)
    pend_entry = np.zeros(m)  # +1 / -1 / 0
    pend_fraction = np.zeros(m)
    pend_equity = np.zeros(m)
    pend_conf = np.zeros(m)
    pend_bar = np.zeros(m, dtype=np.int64)
    signed_exposure = np.zeros(m)

    n_open = 0  # open positions (lets bars without positions or orders skip whole passes)
    n_pend_entry = 0
    wallet = initial_cash
    equity = initial_cash
    peak = initial_cash
    state = ACTIVE
    halted_at_ms = 0
    next_day_ms = (ts[0] // DAY_MS + 1) * DAY_MS if n > 0 else 0
    day_start_equity = initial_cash
    n_wins = 0
    n_losses = 0
    sum_win = 0.0
    sum_loss = 0.0
    lev = leverage if linear else 1.0
    slip_up = 1.0 + slippage
    slip_dn = 1.0 - slippage
    # Lean bookkeeping (bit-identical to marking every bar):
    # * limits at 1 (off) only fire at equity <= 0: while equity is positive and the state
    #   ACTIVE, marking just follows the peak;
    # * with limits on, marking again with the same equity, the same day start and no halt that
    #   can resume changes nothing (a second mark is idempotent), so a flat bar inside a day
    #   skips it (``marked_equity`` is the equity of the last mark; with limits off every bar
    #   the shortcut above does not cover is marked in full);
    # * Kelly statistics only move when a trade has closed since the last bar.
    limits_off = daily_loss >= 1.0 and max_drawdown >= 1.0
    marked_equity = np.nan  # equity at the last full mark (NaN: none yet)
    n_kelly = 0  # closed trades already in the Kelly statistics

    for t in range(n):
        # a new UTC day starts from the previous close's equity (before this bar's fills)
        rolled = ts[t] >= next_day_ms
        if rolled:
            state, day_start_equity, next_day_ms, _ = roll_day_nb(state, ts[t], next_day_ms, equity, day_start_equity)

        # ---- 1a. open: gaps through resting stops / targets, then pending exits
        for j in range(m if n_open > 0 else 0):
            if not present[t, j]:
                continue
            o = open_[t, j]
            q = qty[j]
            if q != 0.0 and entry_bar[j] < t:
                reason = -1
                # a robot that is down has no stops resting unless the exchange holds them
                gap_live = stops_on_exchange or not (has_offline and offline[t])
                if q > 0:
                    if liq[j] > 0.0 and o <= liq[j] and (liq[j] >= stop[j] or not gap_live):
                        reason = EXIT_LIQUIDATION
                    elif gap_live and stop[j] > 0.0 and o <= stop[j]:
                        reason = EXIT_TRAILING if stop[j] != init_stop[j] else EXIT_STOP
                    elif gap_live and target[j] > 0.0 and o >= target[j]:
                        reason = EXIT_TARGET
                    fill = o * slip_dn
                else:
                    if liq[j] > 0.0 and o >= liq[j] and (stop[j] == 0.0 or liq[j] <= stop[j] or not gap_live):
                        reason = EXIT_LIQUIDATION
                    elif gap_live and stop[j] > 0.0 and o >= stop[j]:
                        reason = EXIT_TRAILING if stop[j] != init_stop[j] else EXIT_STOP
                    elif gap_live and target[j] > 0.0 and o <= target[j]:
                        reason = EXIT_TARGET
                    fill = o * slip_up
                if reason < 0 and pend_exit[j]:
                    reason = pend_exit_reason[j]
                if reason >= 0:
                    wallet, n_trades = _close_position_nb(
                        j,
                        t,
                        ts,
                        symbols,
                        fill,
                        reason,
                        qty,
                        entry_price,
                        entry_bar,
                        entry_fee,
                        margin,
                        hi_water,
                        lo_water,
                        conf_at_entry,
                        sig_bar,
                        wallet,
                        fee_rate,
                        trades,
                        n_trades,
                        linear,
                    )
                    n_open -= 1
            pend_exit[j] = False

        # ---- 1b. open: pending entries
        for j in range(m if n_pend_entry > 0 else 0):
            side = pend_entry[j]
            if side == 0.0:
                continue
            pend_entry[j] = 0.0
            n_pend_entry -= 1
            if not present[t, j]:
                n_events = _record_event_nb(events, n_events, ts, symbols, t, j, DENY_NO_PRICE)
                continue
            if qty[j] != 0.0:
                continue  # still holding (an exit could not fill); no pyramiding
            o = open_[t, j]
            fill = o * slip_up if side > 0 else o * slip_dn
            used = 0.0
            upnl = 0.0
            for k in range(m):
                if qty[k] != 0.0:
                    used += margin[k]
                    upnl += qty[k] * (last_close[k] - entry_price[k])
            free = wallet - used + (upnl if linear else min(upnl, 0.0))
            cap = max_volume_share * volume[t, j] if max_volume_share > 0.0 else np.inf
            q, code = entry_quantity_nb(
                pend_fraction[j],
                pend_equity[j],
                lev,
                fill,
                free,
                fee_rate,
                lot_step[j],
                min_qty[j],
                min_notional[j],
                cap,
            )
            if code != ALLOWED:
                n_events = _record_event_nb(events, n_events, ts, symbols, pend_bar[j], j, code)
                continue
            fee = q * fill * fee_rate
            wallet -= fee
            n_open += 1
            qty[j] = q * side
            entry_price[j] = fill
            entry_bar[j] = t
            entry_fee[j] = fee
            margin[j] = q * fill / lev
            conf_at_entry[j] = pend_conf[j]
            sig_bar[j] = pend_bar[j]
            hi_water[j] = fill
            last_close[j] = fill
            lo_water[j] = fill
            trail_ref[j] = fill
            if side > 0:
                stop[j] = round_to_tick_nb(fill * (1.0 - stop_loss), tick[j]) if stop_loss > 0.0 else 0.0
                target[j] = round_to_tick_nb(fill * (1.0 + take_profit), tick[j]) if take_profit > 0.0 else 0.0
                liq[j] = fill * (1.0 - 1.0 / lev + maintenance_margin) if linear and lev > 1.0 else 0.0
            else:
                stop[j] = round_to_tick_nb(fill * (1.0 + stop_loss), tick[j]) if stop_loss > 0.0 else 0.0
                target[j] = round_to_tick_nb(fill * (1.0 - take_profit), tick[j]) if take_profit > 0.0 else 0.0
                liq[j] = fill * (1.0 + 1.0 / lev - maintenance_margin) if linear else 0.0
            init_stop[j] = stop[j]

        # ---- 2. inside the bar: stops, liquidation, targets (pessimistic ordering)
        stops_live = stops_on_exchange or not (has_offline and offline[t])
        for j in range(m if n_open > 0 else 0):
            q = qty[j]
            if q == 0.0 or not present[t, j]:
                continue
            if not stops_live and liq[j] == 0.0:
                continue  # robot down, no stops resting, no liquidation price: nothing fires
            h = high[t, j]
            lo = low[t, j]
            # robot down and no stops resting: only the exchange's liquidation can fire
            tgt = target[j] if stops_live else 0.0
            if q > 0:
                eff_stop = stop[j] if stops_live else 0.0
                if trailing_stop > 0.0 and stops_live:  # the level resting at the venue, tick-rounded
                    eff_stop = trailing_stop_level_nb(eff_stop, trail_ref[j], 1, trailing_stop, tick[j])
                reason = -1
                price = 0.0
                if liq[j] > 0.0 and lo <= liq[j] and liq[j] >= eff_stop:
                    reason = EXIT_LIQUIDATION
                    price = liq[j]
                elif eff_stop > 0.0 and lo <= eff_stop:
                    reason = EXIT_TRAILING if eff_stop != init_stop[j] else EXIT_STOP
                    price = min(eff_stop, open_[t, j]) * slip_dn
                elif tgt > 0.0 and h >= tgt:
                    reason = EXIT_TARGET
                    price = target[j] * slip_dn
                if reason < 0 or reason == EXIT_TARGET:
                    hi_water[j] = max(hi_water[j], h if reason < 0 else target[j])
                    lo_water[j] = min(lo_water[j], lo)
                else:  # stopped: pessimistically the stop came before any high
                    lo_water[j] = min(lo_water[j], price)
                if reason >= 0:
                    wallet, n_trades = _close_position_nb(
                        j,
                        t,
                        ts,
                        symbols,
                        price,
                        reason,
                        qty,
                        entry_price,
                        entry_bar,
                        entry_fee,
                        margin,
                        hi_water,
                        lo_water,
                        conf_at_entry,
                        sig_bar,
                        wallet,
                        fee_rate,
                        trades,
                        n_trades,
                        linear,
                    )
                    n_open -= 1
                elif stops_live and trailing_stop > 0.0:
                    trail_ref[j] = max(trail_ref[j], h)
                    stop[j] = trailing_stop_level_nb(stop[j], trail_ref[j], 1, trailing_stop, tick[j])
            else:
                eff_stop = stop[j] if stops_live else 0.0
                if trailing_stop > 0.0 and stops_live:
                    eff_stop = trailing_stop_level_nb(eff_stop, trail_ref[j], -1, trailing_stop, tick[j])
                reason = -1
                price = 0.0
                if liq[j] > 0.0 and h >= liq[j] and (eff_stop == 0.0 or liq[j] <= eff_stop):
                    reason = EXIT_LIQUIDATION
                    price = liq[j]
                elif eff_stop > 0.0 and h >= eff_stop:
                    reason = EXIT_TRAILING if eff_stop != init_stop[j] else EXIT_STOP
                    price = max(eff_stop, open_[t, j]) * slip_up
                elif tgt > 0.0 and lo <= tgt:
                    reason = EXIT_TARGET
                    price = target[j] * slip_up
                if reason < 0 or reason == EXIT_TARGET:
                    lo_water[j] = min(lo_water[j], lo if reason < 0 else target[j])
                    hi_water[j] = max(hi_water[j], h)
                else:
                    hi_water[j] = max(hi_water[j], price)
                if reason >= 0:
                    wallet, n_trades = _close_position_nb(
                        j,
                        t,
                        ts,
                        symbols,
                        price,
                        reason,
                        qty,
                        entry_price,
                        entry_bar,
                        entry_fee,
                        margin,
                        hi_water,
                        lo_water,
                        conf_at_entry,
                        sig_bar,
                        wallet,
                        fee_rate,
                        trades,
                        n_trades,
                        linear,
                    )
                    n_open -= 1
                elif stops_live and trailing_stop > 0.0:
                    trail_ref[j] = min(trail_ref[j], lo)
                    stop[j] = trailing_stop_level_nb(stop[j], trail_ref[j], -1, trailing_stop, tick[j])

        # ---- 3. close: mark to market, update risk state
        if n_open > 0:
            gross = 0.0
            upnl = 0.0
            for j in range(m):
                if qty[j] != 0.0:
                    if present[t, j]:
                        last_close[j] = close[t, j]
                    upnl += qty[j] * (last_close[j] - entry_price[j])
                    gross += abs(qty[j]) * last_close[j]
            equity = wallet + upnl
            exposure_out[t] = gross / equity if equity > 0.0 else 0.0
        else:
            equity = wallet + 0.0
            exposure_out[t] = 0.0
        equity_out[t] = equity
        # closed-trade statistics for Kelly (only trades already closed)
        while n_kelly < n_trades:
            closed = trades[n_kelly]
            r = closed.pnl / (closed.qty * closed.entry_price)
            n_wins, n_losses, sum_win, sum_loss = kelly_update_nb(r, n_wins, n_losses, sum_win, sum_loss)
            n_kelly += 1
        moves = 0
        if limits_off and state == ACTIVE and equity > 0.0:
            if equity > peak:  # no limit can fire: only the peak moves
                peak = equity
        elif limits_off or rolled or equity != marked_equity or (state == HALTED and resume_after_ms > 0):
            state, peak, halted_at_ms, moves = mark_risk_nb(
                state, equity, peak, day_start_equity, ts[t], halted_at_ms, daily_loss, max_drawdown, resume_after_ms
            )
            marked_equity = equity
        if moves != 0:
            if moves & BIT_HALT_RESUMED:
                n_events = _record_event_nb(events, n_events, ts, symbols, t, -1, EVENT_HALT_RESUMED)
            if moves & BIT_DRAWDOWN_HALT:
                n_events = _record_event_nb(events, n_events, ts, symbols, t, -1, EVENT_DRAWDOWN_HALT)
            if moves & BIT_DAILY_LOSS_HIT:
                n_events = _record_event_nb(events, n_events, ts, symbols, t, -1, EVENT_DAILY_LOSS_HIT)

        # ---- 3b. close: this bar's signals -> risk gate -> orders for the next open
        if t == n - 1:
            break
        if has_offline and offline[t]:
            continue  # the robot is down: no decisions (a halt is acted on once it is back)
        if state == HALTED and flatten_on_halt and n_open > 0:
            for j in range(m):
                if qty[j] != 0.0 and not pend_exit[j]:
                    pend_exit[j] = True
                    pend_exit_reason[j] = EXIT_KILL_SWITCH
        if not signal_rows[t]:
            continue
        for j in range(m):
            d = direction[t, j]
            if math.isnan(d) or not present[t, j]:
                continue
            q = qty[j]
            do_exit, side, _skip = signal_action_nb(d, q, pend_exit[j], linear)
            if do_exit:
                pend_exit[j] = True
                pend_exit_reason[j] = EXIT_SIGNAL
            if side == 0:
                continue
            c = confidence[t, j]
            if math.isnan(c):
                c = 1.0  # a strategy that gives no confidence is sure of its signal
            if corr_limit < 1.0:
                exposure_vector_nb(
                    qty, last_close, pend_exit, pend_entry, pend_fraction, pend_equity, lev, signed_exposure
                )
            code, frac = decide_entry_nb(
                state,
                c,
                min_confidence,
                close,
                t,
                signed_exposure,
                j,
                float(side),
                equity,
                lev,
                position_size,
                corr_limit,
                corr_window,
                sizing,
                n_wins,
                n_losses,
                sum_win,
                sum_loss,
                kelly_share,
                kelly_min_trades,
                atr_pct[t, j] if sizing == SIZING_VOLATILITY else 0.0,
                risk_per_trade,
                atr_multiple,
            )
            if code != ALLOWED:
                n_events = _record_event_nb(events, n_events, ts, symbols, t, j, code)
                continue
            if pend_entry[j] == 0.0:
                n_pend_entry += 1
            pend_entry[j] = float(side)
            pend_fraction[j] = frac
            pend_equity[j] = equity
            pend_conf[j] = c
            pend_bar[j] = t

    # ---- end of data: close what is still open at the last close
    if n > 0:
        for j in range(m):
            if qty[j] != 0.0:
                price = last_close[j] * (slip_dn if qty[j] > 0 else slip_up)
                wallet, n_trades = _close_position_nb(
                    j,
                    n - 1,
                    ts,
                    symbols,
                    price,
                    EXIT_END,
                    qty,
                    entry_price,
                    entry_bar,
                    entry_fee,
                    margin,
                    hi_water,
                    lo_water,
                    conf_at_entry,
                    sig_bar,
                    wallet,
                    fee_rate,
                    trades,
                    n_trades,
                    linear,
                )
        equity_out[n - 1] = wallet
    return n_trades, n_events
