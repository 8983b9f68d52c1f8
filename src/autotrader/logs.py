"""Logging set-up: readable lines for research commands, JSON lines for the live robot."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_BOUND_FIELDS = ("symbol", "client_order_id", "signal_id", "strategy")


class JsonFormatter(logging.Formatter):
    """One JSON object per line with time, level, logger, message and any bound fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _BOUND_FIELDS:
            if (value := getattr(record, name, None)) is not None:
                payload[name] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure_logging(level: str = "WARNING", *, json_lines: bool = False) -> None:
    """Send the ``autotrader`` loggers to stderr at ``level`` (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if json_lines else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger("autotrader")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
