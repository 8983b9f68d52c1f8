"""The prediction schema shared by stored-prediction files and live messages (e.g. from Kafka).

One ``Prediction`` says: at time ``ts`` the model ``model`` expected ``symbol`` to go ``direction``
over the next ``horizon``, with ``confidence`` in [0, 1]. Unknown fields are refused.

Example (JSON)::

    {"id": "p-1", "symbol": "BTCUSDT", "ts": 1704067200000, "direction": "long",
     "confidence": 0.62, "horizon": "4h", "model": "lgbm-v3"}
"""

from __future__ import annotations

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


class Prediction(BaseModel):
    """A directional forecast for one symbol.

    * ``id``: unique per prediction (a duplicate ``id`` in one file is an error);
    * ``symbol``: exchange symbol, normalised like ``SeriesKey`` (``btc/usdt`` → ``BTCUSDT``);
    * ``ts``: when the prediction was made, UTC epoch **milliseconds** (an integer; years 2000-2100);
    * ``direction``: ``"long"``, ``"short"`` or ``"flat"``; the integers ``1``, ``-1``, ``0`` are accepted
      and stored as those words;
    * ``confidence``: probability-like score in [0, 1];
    * ``horizon``: how far ahead the forecast looks, as a **duration** in timeframe syntax (``"30m"``,
      ``"4h"``, ``"1d"``; normalised, so ``"4H"`` → ``"4h"``); a duration rather than a bar count so the
      same message means the same on any bar size;
    * ``model``: name/version of the producing model.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    symbol: str = Field(min_length=1)
    ts: StrictInt
    direction: Direction
    confidence: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    horizon: str
    model: str = Field(min_length=1)

    @field_validator("symbol")
    @classmethod
    def _normalise_symbol(cls, value: str) -> str:
        symbol = value.strip().upper().replace("/", "")
        if not symbol:
            raise ValueError("symbol is empty")
        return symbol

    @field_validator("ts")
    @classmethod
    def _plausible_ts(cls, value: int) -> int:
        if not _MIN_TS_MS <= value < _MAX_TS_MS:
            raise ValueError(f"{value} is not epoch milliseconds between 2000 and 2100 (seconds instead?)")
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
        try:
            return Timeframe.parse(value).name
        except ConfigError:
            raise ValueError(f"{value!r} is not a duration such as '30m', '4h' or '1d'") from None

    @property
    def sign(self) -> int:
        """``+1`` long, ``-1`` short, ``0`` flat."""
        return _SIGN[self.direction]

    @property
    def horizon_ms(self) -> int:
        return Timeframe.parse(self.horizon).ms
