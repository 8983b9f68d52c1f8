"""The prediction schema shared by stored-prediction files and live messages (e.g. from Kafka).

One ``Prediction`` says: at time ``ts`` the model ``model`` expected ``symbol`` to go ``direction``
over the next ``horizon``, with ``confidence`` in [0, 1]. Unknown fields are refused, and every field
is bounded by what the robot's state store and its decision can hold: ``id`` and ``model`` at most
200 characters, ``symbol`` 40, ``horizon`` 20 characters and at most 30 days; text fields refuse
control characters, unpaired surrogates and surrounding whitespace (``" p-1"`` is not ``"p-1"``).

Example (JSON)::

    {"id": "p-1", "symbol": "BTCUSDT", "ts": 1704067200000, "direction": "long",
     "confidence": 0.62, "horizon": "4h", "model": "lgbm-v3"}
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from autotrader.domain.errors import ConfigError
from autotrader.domain.timeframe import Timeframe

Direction = Literal["long", "short", "flat"]

_DIRECTION_ALIASES: dict[object, str] = {
    1: "long",
    -1: "short",
    0: "flat",
    "1": "long",
    "+1": "long",
    "-1": "short",
    "0": "flat",
}
_MIN_TS_MS = 946_684_800_000  # 2000-01-01: anything earlier is almost surely seconds, not milliseconds
_MAX_TS_MS = 4_102_444_800_000  # 2100-01-01
_SIGN = {"long": 1, "short": -1, "flat": 0}

MAX_ID_CHARS = 200  # signals.signal_id, intents.signal_id
MAX_SYMBOL_CHARS = 40  # signals.symbol and every other symbol column
MAX_HORIZON_CHARS = 20  # signals.horizon
MAX_MODEL_CHARS = 200  # signals.model
MAX_HORIZON_MS = 30 * 86_400_000  # 30 days: a replay of old predictions is always stale
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")  # control characters, unpaired surrogates
_SYMBOL = re.compile(r"[A-Z0-9][A-Z0-9._:-]*")


def _bounded_text(value: str, limit: int) -> str:
    if len(value) > limit:
        raise ValueError(f"longer than {limit} characters ({len(value)})")
    if value != value.strip():
        raise ValueError("has leading or trailing whitespace")
    if _UNSTORABLE.search(value):
        raise ValueError("contains a control character or an unpaired surrogate")
    return value


class Prediction(BaseModel):
    """A directional forecast for one symbol.

    * ``id``: unique per prediction (a duplicate ``id`` in one file is an error), 1-200 characters,
      used exactly as given (no trimming: surrounding whitespace is refused);
    * ``symbol``: exchange symbol, normalised like ``SeriesKey`` (``btc/usdt`` → ``BTCUSDT``), then
      1-40 letters, digits, ``.``, ``_``, ``:`` or ``-``;
    * ``ts``: when the prediction was made, UTC epoch **milliseconds** (an integer; years 2000-2100);
    * ``direction``: ``"long"``, ``"short"`` or ``"flat"``; the integers ``1``, ``-1``, ``0`` are accepted
      and stored as those words;
    * ``confidence``: probability-like score in [0, 1];
    * ``horizon``: how far ahead the forecast looks, as a **duration** in timeframe syntax (``"30m"``,
      ``"4h"``, ``"1d"``; normalised, so ``"4H"`` → ``"4h"``); a duration rather than a bar count so the
      same message means the same on any bar size; at most ``30d``;
    * ``model``: name/version of the producing model, 1-200 characters.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    symbol: str = Field(min_length=1)
    ts: StrictInt
    direction: Direction
    confidence: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    horizon: str
    model: str = Field(min_length=1)

    @field_validator("id")
    @classmethod
    def _storable_id(cls, value: str) -> str:
        return _bounded_text(value, MAX_ID_CHARS)

    @field_validator("model")
    @classmethod
    def _storable_model(cls, value: str) -> str:
        return _bounded_text(value, MAX_MODEL_CHARS)

    @field_validator("symbol")
    @classmethod
    def _normalise_symbol(cls, value: str) -> str:
        symbol = value.strip().upper().replace("/", "")
        if not symbol:
            raise ValueError("symbol is empty")
        if len(symbol) > MAX_SYMBOL_CHARS:
            raise ValueError(f"longer than {MAX_SYMBOL_CHARS} characters ({len(symbol)})")
        if not _SYMBOL.fullmatch(symbol):
            raise ValueError("may only use letters, digits, '.', '_', ':' and '-'")
        return symbol

    @field_validator("ts")
    @classmethod
    def _plausible_ts(cls, value: int) -> int:
        if not _MIN_TS_MS <= value < _MAX_TS_MS:
            shown = value if abs(value) < 10**30 else "a huge number"
            raise ValueError(f"{shown} is not epoch milliseconds between 2000 and 2100 (seconds instead?)")
        return value

    @field_validator("direction", mode="before")
    @classmethod
    def _direction_alias(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return value  # refused by the Literal: True is not a direction
        if isinstance(value, str):
            value = value.strip().lower()
        try:
            return _DIRECTION_ALIASES.get(value, value)
        except TypeError:  # unhashable: let the Literal refuse it
            return value

    @field_validator("horizon", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("must be a duration such as '4h' (a string)")
        if len(value) > MAX_HORIZON_CHARS:
            raise ValueError(f"longer than {MAX_HORIZON_CHARS} characters ({len(value)})")
        try:
            horizon = Timeframe.parse(value)
        except ConfigError:
            raise ValueError(f"{value!r} is not a duration such as '30m', '4h' or '1d'") from None
        if horizon.ms > MAX_HORIZON_MS:
            raise ValueError(f"{value!r} is longer than 30 days")
        return horizon.name

    @property
    def sign(self) -> int:
        """``+1`` long, ``-1`` short, ``0`` flat."""
        return _SIGN[self.direction]

    @property
    def horizon_ms(self) -> int:
        return Timeframe.parse(self.horizon).ms
