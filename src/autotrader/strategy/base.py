"""The strategy interface.

A strategy turns aligned candles into **signals**: for every bar ``t`` and symbol, what it wants
to do, decided from data up to and including bar ``t``'s close. The engine (backtest, paper and
live alike) acts on a signal at bar ``t+1``'s open at the earliest, through the risk engine.

Signal values (``Signals.direction``):
  ``+1``  go long (open, or reverse a short),
  ``-1``  go short (linear markets only; spot treats it as "exit"),
  ``0``   go flat (close any position),
  ``NaN`` no new decision on this bar (keep whatever is held).

Write a strategy in one file: subclass ``Strategy``, set ``name`` and ``parameters``, implement
``generate``. Subclasses register themselves by ``name``.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from autotrader.domain.aligned import AlignedCandles
from autotrader.domain.candles import FloatArray
from autotrader.domain.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Param:
    """A tunable strategy parameter with its default and (for optimisation) a search range.

    ``low``/``high`` bound the value; walk-forward searches the range unless ``search`` is false
    (a model's settings, say, that a trading-rule search should leave alone).
    """

    default: float | int | str | bool
    low: float | None = None
    high: float | None = None
    help: str = ""
    search: bool = True

    def coerce(self, name: str, value: Any) -> float | int | str | bool:
        """Convert ``value`` (often a string from ``--param k=v``) to the default's type."""
        kind = type(self.default)
        try:
            if kind is bool and isinstance(value, str):
                if value.lower() not in {"true", "false", "1", "0", "yes", "no"}:
                    raise ValueError(value)
                return value.lower() in {"true", "1", "yes"}
            coerced = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"parameter {name}={value!r}: expected {kind.__name__}") from None
        if isinstance(coerced, int | float) and not isinstance(coerced, bool):
            if self.low is not None and coerced < self.low:
                raise ConfigError(f"parameter {name}={coerced} is below its minimum {self.low}")
            if self.high is not None and coerced > self.high:
                raise ConfigError(f"parameter {name}={coerced} is above its maximum {self.high}")
        return coerced


@dataclass(frozen=True, slots=True)
class Signals:
    """What a strategy wants per bar and symbol; arrays of shape ``(bars, symbols)``.

    ``confidence`` is in [0, 1] where a signal is given; NaN means "no confidence given" and counts
    as 1.0 (rule-based strategies).
    ``horizon_bars`` is the horizon a directional forecast is about (used to score accuracy);
    ``None`` for rule-based strategies.
    """

    direction: FloatArray
    confidence: FloatArray
    horizon_bars: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_direction(cls, direction: FloatArray, horizon_bars: int | None = None) -> Signals:
        conf = np.full(direction.shape, np.nan)  # NaN: "no confidence given", read as sure
        return cls(direction=direction, confidence=conf, horizon_bars=horizon_bars)


_REGISTRY: dict[str, type[Strategy]] = {}


class Strategy(ABC):
    """Base class of every strategy. See the module docstring for the signal contract."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    parameters: ClassVar[dict[str, Param]] = {}
    # Set by a caller that shows progress: ``progress(done, total, what)`` for long steps (model training).
    progress: Callable[[int, int, str], None] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "name", None) and not getattr(cls, "__abstractmethods__", None):
            _REGISTRY[cls.name] = cls

    def __init__(self, **params: Any) -> None:
        unknown = [k for k in params if k not in self.parameters]
        if unknown:
            raise ConfigError(
                f"strategy {self.name!r} has no parameter {unknown[0]!r}{_did_you_mean(unknown[0], self.parameters)}"
            )
        self.params: dict[str, Any] = {
            k: (p.coerce(k, params[k]) if k in params else p.default) for k, p in self.parameters.items()
        }
        self.validate()

    def report_progress(self, done: int, total: int, what: str) -> None:
        """Tell the caller how far a long step got (no-op unless ``progress`` is set)."""
        if self.progress is not None:
            self.progress(done, total, what)

    def validate(self) -> None:  # noqa: B027 (an optional hook, not an abstract method)
        """Cross-parameter checks; raise ``ConfigError``. Override when needed."""

    @property
    def warmup_bars(self) -> int:
        """Bars needed before the first meaningful signal.

        A backtest loads this many stored bars before its period (when the store has them) so that
        the strategy can decide from the period's first bar; the lookahead check starts after them.
        """
        return 0

    @property
    def history_bars(self) -> int:
        """Bars of history the strategy can use before the period (at least ``warmup_bars``).

        A model that learns from the past (``ml``) asks for more than its minimum; the backtest loads
        up to this many stored bars before the period. Defaults to ``warmup_bars``.
        """
        return self.warmup_bars

    @abstractmethod
    def generate(self, data: AlignedCandles) -> Signals:
        """Signals for every bar of ``data``, using only data up to each bar's close."""


def _did_you_mean(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(choices)) or 'none'}"


def registered_strategies() -> dict[str, type[Strategy]]:
    """Name → class of every strategy imported so far (the built-in library is imported by ``get_strategy``)."""
    return dict(_REGISTRY)


def get_strategy(name: str, **params: Any) -> Strategy:
    """Build a registered strategy by name; unknown names get a "did you mean" suggestion."""
    import autotrader.strategy.library  # noqa: F401  (registers the built-in strategies)

    cls = _REGISTRY.get(name)
    if cls is None:
        raise ConfigError(f"unknown strategy {name!r}{_did_you_mean(name, _REGISTRY)}")
    return cls(**params)
