"""Logging set-up: readable lines for research commands, JSON lines for the live robot."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from autotrader.domain.redact import redact

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
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            payload["exception"] = record.exc_text
        return json.dumps(payload, default=str)


class RedactingFilter(logging.Filter):
    """Redacts the message, the traceback (``exc_info``, chained causes included) and the stack of every record.

    Attached to every handler ``configure_logging`` installs, so no secret reaches a log line,
    whatever an exception's ``__cause__`` or ``__context__`` holds.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = redact(_FORMATTER.formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FORMATTER = logging.Formatter()


def configure_logging(level: str = "WARNING", *, json_lines: bool = False) -> None:
    """Send the ``autotrader`` loggers to stderr at ``level`` (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if json_lines else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.addFilter(RedactingFilter())
    root = logging.getLogger("autotrader")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
