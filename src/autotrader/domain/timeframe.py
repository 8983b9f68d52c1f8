"""Timeframes such as ``1m``, ``30m``, ``1h``, ``4h``, ``1d`` and their length in milliseconds."""

from __future__ import annotations

import re
from dataclasses import dataclass

from autotrader.domain.errors import ConfigError

_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_PATTERN = re.compile(r"^(\d+)([mhdw])$")


@dataclass(frozen=True, slots=True)
class Timeframe:
    """A bar length. ``str(tf)`` gives the canonical name (``"1h"``)."""

    name: str
    ms: int

    @classmethod
    def parse(cls, text: str) -> Timeframe:
        """Parse ``"30m"``, ``"1h"``, ``"4h"``, ``"1d"``...; raise ``ConfigError`` otherwise."""
        match = _PATTERN.match(text.strip().lower())
        if not match or int(match.group(1)) <= 0:
            raise ConfigError(f"invalid timeframe {text!r}: expected a number and a unit, e.g. 30m, 1h, 4h, 1d")
        count, unit = int(match.group(1)), match.group(2)
        return cls(name=f"{count}{unit}", ms=count * _UNIT_MS[unit])

    def __str__(self) -> str:
        return self.name
