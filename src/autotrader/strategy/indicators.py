"""Technical indicators as numba kernels on 2-D arrays of shape ``(bars, symbols)``.

Every kernel works column by column and is **NaN-aware**: a NaN input (a bar the symbol does not
have, before its listing or in a gap) gives a NaN output, and the windows run over the symbol's
*present* bars only, as if its gaps were not there. A window of ``n`` is therefore the last ``n``
real bars of that symbol, which is what a single-symbol library (pandas, backtesting.py, TA-Lib)
computes on that symbol's own candles. Outputs are NaN until the window is full.

Every kernel is causal: the value at bar ``t`` uses bars ``<= t`` only (``rolling_max``/``rolling_min``
with ``exclude_current=True`` use bars ``< t``).

Kernels end in ``_nb`` and take float64 C-contiguous arrays; the wrappers without the suffix accept
1-D or 2-D array-likes, convert, and check the window.

**Exact moving averages on tick prices.** Exchange prices are decimals on a tick grid (0.01,
0.0001, ...), so two averages are often *exactly* equal, and a float rolling sum (even a
compensated one) decides ``fast > slow`` at such a tie by its rounding error. When every value of
a column is a decimal with at most 9 places (checked: ``round(x * 10**k) / 10**k == x``, i.e. ``x``
is the double nearest that decimal) and the window sums fit in 53 bits, the sums are kept as exact
integers of ``10**-k`` units: ``sma_nb`` returns the correctly rounded exact mean (equal means
give equal doubles) and the ``sma_cross`` kernel compares the two means exactly (integer
arithmetic, no division). Other columns use Kahan-compensated float sums.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from autotrader.domain.candles import FloatArray
from autotrader.domain.errors import ConfigError
from autotrader.jit import njit

# --------------------------------------------------------------------------------------------------
# 1-D kernels on the compressed (present-bars-only) series
# --------------------------------------------------------------------------------------------------


_MAX_DECIMALS = 9
_EXACT_LIMIT = 2.0**53  # integers up to here are exact doubles


@njit(cache=True)
def _decimal_scale(v: FloatArray) -> tuple[float, float]:
    """``(10**k, max|v|)`` for the smallest ``k <= 9`` such that every non-NaN ``v[i]`` is the double
    nearest an integer number of ``10**-k`` and ``max|v| * 10**k`` is below 2**53; ``(0.0, 0.0)``
    when there is none.

    A column off the grid fails at its first off-grid value, so the check costs one pass for tick
    data and almost nothing for arbitrary floats."""
    scale = 1.0
    for _ in range(_MAX_DECIMALS + 1):
        ok = True
        for i in range(v.shape[0]):
            x = v[i]
            if not np.isnan(x) and np.rint(x * scale) / scale != x:
                ok = False
                break
        if ok:
            amax = 0.0
            for i in range(v.shape[0]):
                if not np.isnan(v[i]):
                    amax = max(amax, abs(v[i]))
            return (scale, amax) if amax * scale < _EXACT_LIMIT else (0.0, 0.0)
        scale *= 10.0
    return 0.0, 0.0


@njit(cache=True)
def _exact_window_ok(scale: float, amax: float, n: int) -> bool:
    """Whether sums of ``n`` values up to ``amax`` in units of ``1/scale`` stay below 2**53 (exact doubles)."""
    return scale > 0.0 and np.rint(amax * scale) * n < _EXACT_LIMIT and n * scale < _EXACT_LIMIT


@njit(cache=True)
def _cmp_means(a_sum: int, na: int, b_sum: int, nb: int) -> int:
    """Sign of ``a_sum/na - b_sum/nb`` in exact integer arithmetic (no product can overflow)."""
    qa, ra = a_sum // na, a_sum % na
    qb, rb = b_sum // nb, b_sum % nb
    if qa != qb:
        return 1 if qa > qb else -1
    d = ra * nb - rb * na  # 0 <= ra < na, 0 <= rb < nb: |d| < na * nb
    return 1 if d > 0 else (-1 if d < 0 else 0)


@njit(cache=True)
def _sma_exact_1d(v: FloatArray, n: int, scale: float) -> FloatArray:
    """Rolling mean from an exact integer sum of ``v * scale``: the correctly rounded exact mean."""
    out = np.full(v.shape[0], np.nan)
    total = 0
    denom = n * scale
    for i in range(v.shape[0]):
        total += np.int64(np.rint(v[i] * scale))
        if i >= n:
            total -= np.int64(np.rint(v[i - n] * scale))
        if i >= n - 1:
            out[i] = total / denom
    return out


@njit(cache=True)
def _sma_1d(v: FloatArray, n: int) -> FloatArray:
    scale, amax = _decimal_scale(v)
    if _exact_window_ok(scale, amax, n):
        return _sma_exact_1d(v, n, scale)
    out = np.full(v.shape[0], np.nan)
    total = 0.0
    comp = 0.0  # Kahan compensation: no drift over long series
    for i in range(v.shape[0]):
        y = v[i] - comp
        t = total + y
        comp = (t - total) - y
        total = t
        if i >= n:
            y = -v[i - n] - comp
            t = total + y
            comp = (t - total) - y
            total = t
        if i >= n - 1:
            out[i] = total / n
    return out


@njit(cache=True)
def _ema_1d(v: FloatArray, n: int) -> FloatArray:
    out = np.full(v.shape[0], np.nan)
    if v.shape[0] == 0:
        return out
    alpha = 2.0 / (n + 1.0)
    value = v[0]
    for i in range(v.shape[0]):
        if i > 0:
            value = alpha * v[i] + (1.0 - alpha) * value
        if i >= n - 1:
            out[i] = value
    return out


@njit(cache=True)
def _wilder_1d(v: FloatArray, n: int, first: int) -> FloatArray:
    """Wilder smoothing of ``v[first:]`` seeded with the plain mean of its first ``n`` values."""
    out = np.full(v.shape[0], np.nan)
    if v.shape[0] - first < n:
        return out
    seed = 0.0
    for i in range(first, first + n):
        seed += v[i]
    value = seed / n
    out[first + n - 1] = value
    for i in range(first + n, v.shape[0]):
        value = (value * (n - 1) + v[i]) / n
        out[i] = value
    return out


@njit(cache=True)
def _rsi_1d(v: FloatArray, n: int) -> FloatArray:
    m = v.shape[0]
    gain = np.zeros(m)
    loss = np.zeros(m)
    for i in range(1, m):
        d = v[i] - v[i - 1]
        if d > 0:
            gain[i] = d
        else:
            loss[i] = -d
    avg_gain = _wilder_1d(gain, n, 1)
    avg_loss = _wilder_1d(loss, n, 1)
    out = np.full(m, np.nan)
    for i in range(m):
        g = avg_gain[i]
        lo = avg_loss[i]
        if np.isnan(g):
            continue
        if lo == 0.0:
            out[i] = 50.0 if g == 0.0 else 100.0
        else:
            out[i] = 100.0 - 100.0 / (1.0 + g / lo)
    return out


@njit(cache=True)
def _atr_1d(h: FloatArray, lo: FloatArray, c: FloatArray, n: int) -> FloatArray:
    m = c.shape[0]
    tr = np.empty(m)
    for i in range(m):
        r = h[i] - lo[i]
        if i > 0:
            r = max(r, abs(h[i] - c[i - 1]), abs(lo[i] - c[i - 1]))
        tr[i] = r
    return _wilder_1d(tr, n, 0)


@njit(cache=True)
def _rolling_extreme_1d(v: FloatArray, n: int, exclude_current: bool, is_max: bool) -> FloatArray:
    """Max (or min) of the last ``n`` values with a monotonic deque: O(1) amortised per bar."""
    m = v.shape[0]
    out = np.full(m, np.nan)
    dq = np.empty(m, dtype=np.int64)
    head = 0
    tail = 0
    for i in range(m):
        if exclude_current and i >= n:
            while dq[head] < i - n:
                head += 1
            out[i] = v[dq[head]]
        while tail > head and ((v[dq[tail - 1]] <= v[i]) if is_max else (v[dq[tail - 1]] >= v[i])):
            tail -= 1
        dq[tail] = i
        tail += 1
        if not exclude_current and i >= n - 1:
            while dq[head] <= i - n:
                head += 1
            out[i] = v[dq[head]]
    return out


@njit(cache=True)
def _rolling_std_1d(v: FloatArray, n: int, ddof: int) -> FloatArray:
    """Two-pass mean/variance per window: exact, no cancellation, O(n) per bar."""
    m = v.shape[0]
    out = np.full(m, np.nan)
    if n - ddof <= 0:
        return out
    for i in range(n - 1, m):
        mean = 0.0
        for k in range(i - n + 1, i + 1):
            mean += v[k]
        mean /= n
        ss = 0.0
        for k in range(i - n + 1, i + 1):
            d = v[k] - mean
            ss += d * d
        out[i] = np.sqrt(ss / (n - ddof))
    return out


@njit(cache=True)
def _log_return_1d(v: FloatArray, n: int) -> FloatArray:
    out = np.full(v.shape[0], np.nan)
    for i in range(n, v.shape[0]):
        out[i] = np.log(v[i] / v[i - n])
    return out


@njit(cache=True)
def _present_rows(col: FloatArray) -> npt.NDArray[np.int64]:
    rows = np.empty(col.shape[0], dtype=np.int64)
    k = 0
    for i in range(col.shape[0]):
        if not np.isnan(col[i]):
            rows[k] = i
            k += 1
    return rows[:k]


# --------------------------------------------------------------------------------------------------
# 2-D kernels: compress each column to its present bars, run the 1-D kernel, scatter back
# --------------------------------------------------------------------------------------------------


@njit(cache=True)
def sma_nb(x: FloatArray, n: int) -> FloatArray:
    """Simple moving average of the last ``n`` present bars (pandas ``rolling(n).mean()``)."""
    out = np.full(x.shape, np.nan)
    for j in range(x.shape[1]):
        rows = _present_rows(x[:, j])
        if rows.shape[0] == x.shape[0]:  # no gaps: skip the gather/scatter
            out[:, j] = _sma_1d(x[:, j], n)
        else:
            out[rows, j] = _sma_1d(x[rows, j], n)
    return out


@njit(cache=True)
def ema_nb(x: FloatArray, n: int) -> FloatArray:
    """Exponential moving average, ``alpha = 2/(n+1)``, seeded with the first value.

    Equals pandas ``ewm(span=n, adjust=False, min_periods=n).mean()``: NaN for the first ``n-1`` bars.
    """
    out = np.full(x.shape, np.nan)
    for j in range(x.shape[1]):
        rows = _present_rows(x[:, j])
        if rows.shape[0] == x.shape[0]:  # no gaps: skip the gather/scatter
            out[:, j] = _ema_1d(x[:, j], n)
        else:
            out[rows, j] = _ema_1d(x[rows, j], n)
    return out


@njit(cache=True)
def rsi_nb(close: FloatArray, n: int) -> FloatArray:
    """Wilder's RSI: average gain/loss seeded with the plain mean of the first ``n`` changes,
    then ``avg = (avg*(n-1) + x)/n``. First value at the ``n``-th change (bar index ``n``).
    No loss gives 100, no change at all gives 50."""
    out = np.full(close.shape, np.nan)
    for j in range(close.shape[1]):
        rows = _present_rows(close[:, j])
        if rows.shape[0] == close.shape[0]:  # no gaps: skip the gather/scatter
            out[:, j] = _rsi_1d(close[:, j], n)
        else:
            out[rows, j] = _rsi_1d(close[rows, j], n)
    return out


@njit(cache=True)
def atr_nb(high: FloatArray, low: FloatArray, close: FloatArray, n: int) -> FloatArray:
    """Wilder's average true range; the first true range is ``high - low`` (no previous close).

    Rows are taken where ``close`` is present."""
    out = np.full(close.shape, np.nan)
    for j in range(close.shape[1]):
        rows = _present_rows(close[:, j])
        out[rows, j] = _atr_1d(high[rows, j], low[rows, j], close[rows, j], n)
    return out


@njit(cache=True)
def rolling_max_nb(x: FloatArray, n: int, exclude_current: bool) -> FloatArray:
    """Highest of the last ``n`` present bars; with ``exclude_current`` the ``n`` bars *before* this one
    (a Donchian channel to break out of: ``close[t] > rolling_max(high, n, True)[t]``)."""
    out = np.full(x.shape, np.nan)
    for j in range(x.shape[1]):
        rows = _present_rows(x[:, j])
        out[rows, j] = _rolling_extreme_1d(x[rows, j], n, exclude_current, True)
    return out


@njit(cache=True)
def rolling_min_nb(x: FloatArray, n: int, exclude_current: bool) -> FloatArray:
    """Lowest of the last ``n`` present bars (or of the ``n`` before this one); see ``rolling_max_nb``."""
    out = np.full(x.shape, np.nan)
    for j in range(x.shape[1]):
        rows = _present_rows(x[:, j])
        out[rows, j] = _rolling_extreme_1d(x[rows, j], n, exclude_current, False)
    return out


@njit(cache=True)
def rolling_std_nb(x: FloatArray, n: int, ddof: int) -> FloatArray:
    """Standard deviation of the last ``n`` present bars (pandas ``rolling(n).std(ddof=ddof)``)."""
    out = np.full(x.shape, np.nan)
    for j in range(x.shape[1]):
        rows = _present_rows(x[:, j])
        out[rows, j] = _rolling_std_1d(x[rows, j], n, ddof)
    return out


@njit(cache=True)
def log_return_nb(x: FloatArray, n: int) -> FloatArray:
    """``log(x[t] / x[t-n])`` over present bars (``t-n`` is the ``n``-th previous present bar)."""
    out = np.full(x.shape, np.nan)
    for j in range(x.shape[1]):
        rows = _present_rows(x[:, j])
        if rows.shape[0] == x.shape[0]:  # no gaps: skip the gather/scatter
            out[:, j] = _log_return_1d(x[:, j], n)
        else:
            out[rows, j] = _log_return_1d(x[rows, j], n)
    return out


@njit(cache=True)
def crossed_above_nb(a: FloatArray, b: FloatArray) -> npt.NDArray[np.bool_]:
    """True at bar ``t`` where ``a`` crossed above ``b``: ``a[p] < b[p] and a[t] > b[t]``.

    ``p`` is the previous bar where both ``a`` and ``b`` are defined (skipping a symbol's gaps). The
    inequalities are both strict, exactly as ``backtesting.lib.crossover`` (``series1[-2] < series2[-2]
    and series1[-1] > series2[-1]``): touching and bouncing back is not a cross, and neither is a move
    from equality to above. A comparison with NaN is false, so the first defined bar never crosses.
    """
    out = np.zeros(a.shape, dtype=np.bool_)
    for j in range(a.shape[1]):
        have_prev = False
        prev_below = False
        for i in range(a.shape[0]):
            ai = a[i, j]
            bi = b[i, j]
            if np.isnan(ai) or np.isnan(bi):
                continue
            if have_prev and prev_below and ai > bi:
                out[i, j] = True
            prev_below = ai < bi
            have_prev = True
    return out


@njit(cache=True)
def _ma_cross_into(v: FloatArray, out: FloatArray, n_fast: int, n_slow: int, up: float, down: float) -> None:
    """Write ``up`` into ``out`` where SMA(n_fast) crosses above SMA(n_slow) and ``down`` where it
    crosses below; other entries of ``out`` are left as they are (the caller fills them with NaN).

    One pass, no intermediate arrays; the sums are the same Kahan sums as ``_sma_1d``, so the
    averages, and therefore the crosses, are bit-for-bit those of ``sma_nb`` + ``crossed_above_nb`` where
    ``sma_nb`` also sums in floats (data off a decimal grid; ``_ma_cross_column`` picks the exact path).
    """
    fast_total = fast_comp = slow_total = slow_comp = 0.0
    first = max(n_fast, n_slow) - 1
    have_prev = prev_fast_below = prev_slow_below = False
    for i in range(v.shape[0]):
        y = v[i] - fast_comp
        t = fast_total + y
        fast_comp = (t - fast_total) - y
        fast_total = t
        if i >= n_fast:
            y = -v[i - n_fast] - fast_comp
            t = fast_total + y
            fast_comp = (t - fast_total) - y
            fast_total = t
        y = v[i] - slow_comp
        t = slow_total + y
        slow_comp = (t - slow_total) - y
        slow_total = t
        if i >= n_slow:
            y = -v[i - n_slow] - slow_comp
            t = slow_total + y
            slow_comp = (t - slow_total) - y
            slow_total = t
        if i < first:
            continue
        fast = fast_total / n_fast
        slow = slow_total / n_slow
        if np.isnan(fast) or np.isnan(slow):
            continue
        if have_prev and prev_fast_below and fast > slow:
            out[i] = up
        elif have_prev and prev_slow_below and slow > fast:
            out[i] = down
        prev_fast_below = fast < slow
        prev_slow_below = slow < fast
        have_prev = True


@njit(cache=True)
def _ma_cross_exact_into(
    v: FloatArray, out: FloatArray, n_fast: int, n_slow: int, up: float, down: float, scale: float
) -> None:
    """``_ma_cross_into`` with the sums as exact integers of ``1/scale`` units and the means compared
    exactly (``_cmp_means``): a bar where the two averages are equal in decimal is a tie, always."""
    fast_total = 0
    slow_total = 0
    first = max(n_fast, n_slow) - 1
    have_prev = prev_fast_below = prev_slow_below = False
    for i in range(v.shape[0]):
        tick = np.int64(np.rint(v[i] * scale))
        fast_total += tick
        slow_total += tick
        if i >= n_fast:
            fast_total -= np.int64(np.rint(v[i - n_fast] * scale))
        if i >= n_slow:
            slow_total -= np.int64(np.rint(v[i - n_slow] * scale))
        if i < first:
            continue
        c = _cmp_means(fast_total, n_fast, slow_total, n_slow)
        if have_prev and prev_fast_below and c > 0:
            out[i] = up
        elif have_prev and prev_slow_below and c < 0:
            out[i] = down
        prev_fast_below = c < 0
        prev_slow_below = c > 0
        have_prev = True


@njit(cache=True)
def _ma_cross_column(v: FloatArray, out: FloatArray, n_fast: int, n_slow: int, up: float, down: float) -> None:
    """Exact integer comparison on decimal tick data (see the module docstring), Kahan sums otherwise."""
    scale, amax = _decimal_scale(v)
    if _exact_window_ok(scale, amax, max(n_fast, n_slow)):
        _ma_cross_exact_into(v, out, n_fast, n_slow, up, down, scale)
    else:
        _ma_cross_into(v, out, n_fast, n_slow, up, down)


@njit(cache=True)
def sma_cross_direction_nb(x: FloatArray, n_fast: int, n_slow: int, up: float, down: float) -> FloatArray:
    """Per column: ``up`` on bars where SMA(``n_fast``) crosses above SMA(``n_slow``), ``down`` where it
    crosses below, NaN elsewhere: ``crossed_above_nb(sma_nb(x, f), sma_nb(x, s))`` and its mirror, fused
    into one pass over each symbol's present bars. A column without gaps is written in place: the
    output is the only array allocated (fresh large arrays cost page faults, which dominate here).
    On decimal tick prices the two means are compared exactly (module docstring), so a tie is a tie.
    """
    out = np.full(x.shape, np.nan)
    for j in range(x.shape[1]):
        gaps = 0
        for i in range(x.shape[0]):
            if np.isnan(x[i, j]):
                gaps += 1
        if gaps == 0:
            _ma_cross_column(x[:, j], out[:, j], n_fast, n_slow, up, down)
        else:
            rows = _present_rows(x[:, j])
            compressed = np.full(rows.shape[0], np.nan)
            _ma_cross_column(x[rows, j], compressed, n_fast, n_slow, up, down)
            out[rows, j] = compressed
    return out


# --------------------------------------------------------------------------------------------------
# Typed wrappers
# --------------------------------------------------------------------------------------------------


def _as_2d(x: npt.ArrayLike) -> tuple[FloatArray, bool]:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        return np.ascontiguousarray(arr[:, None]), True
    if arr.ndim != 2:
        raise ValueError(f"expected a 1-D or 2-D array, got {arr.ndim}-D")
    return np.ascontiguousarray(arr), False


def _window(n: int, what: str = "window") -> int:
    if isinstance(n, bool) or int(n) != n or int(n) < 1:
        raise ConfigError(f"{what} must be a positive integer, got {n!r}")
    return int(n)


def _back(out: np.ndarray, squeeze: bool) -> np.ndarray:
    return out[:, 0] if squeeze else out


def sma(x: npt.ArrayLike, n: int) -> FloatArray:
    """Simple moving average; see ``sma_nb``."""
    arr, squeeze = _as_2d(x)
    return _back(sma_nb(arr, _window(n)), squeeze)


def ema(x: npt.ArrayLike, n: int) -> FloatArray:
    """Exponential moving average; see ``ema_nb``."""
    arr, squeeze = _as_2d(x)
    return _back(ema_nb(arr, _window(n)), squeeze)


def rsi(close: npt.ArrayLike, n: int = 14) -> FloatArray:
    """Wilder's RSI in [0, 100]; see ``rsi_nb``."""
    arr, squeeze = _as_2d(close)
    return _back(rsi_nb(arr, _window(n)), squeeze)


def atr(high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, n: int = 14) -> FloatArray:
    """Wilder's average true range; see ``atr_nb``."""
    c, squeeze = _as_2d(close)
    h, _ = _as_2d(high)
    lo, _ = _as_2d(low)
    return _back(atr_nb(h, lo, c, _window(n)), squeeze)


def rolling_max(x: npt.ArrayLike, n: int, exclude_current: bool = False) -> FloatArray:
    """Rolling maximum; see ``rolling_max_nb``."""
    arr, squeeze = _as_2d(x)
    return _back(rolling_max_nb(arr, _window(n), bool(exclude_current)), squeeze)


def rolling_min(x: npt.ArrayLike, n: int, exclude_current: bool = False) -> FloatArray:
    """Rolling minimum; see ``rolling_min_nb``."""
    arr, squeeze = _as_2d(x)
    return _back(rolling_min_nb(arr, _window(n), bool(exclude_current)), squeeze)


def rolling_std(x: npt.ArrayLike, n: int, ddof: int = 1) -> FloatArray:
    """Rolling standard deviation (sample, ``ddof=1``, by default); see ``rolling_std_nb``."""
    arr, squeeze = _as_2d(x)
    return _back(rolling_std_nb(arr, _window(n), int(ddof)), squeeze)


def log_return(x: npt.ArrayLike, n: int = 1) -> FloatArray:
    """Log return over ``n`` present bars; see ``log_return_nb``."""
    arr, squeeze = _as_2d(x)
    return _back(log_return_nb(arr, _window(n, "lookback")), squeeze)


def crossed_above(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Bars where ``a`` crossed above ``b`` (backtesting.py ``crossover`` semantics); see ``crossed_above_nb``."""
    aa, squeeze = _as_2d(a)
    bb, _ = _as_2d(np.broadcast_to(np.asarray(b, dtype=np.float64), np.shape(a)))
    return _back(crossed_above_nb(aa, bb), squeeze)
