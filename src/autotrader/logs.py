"""Logging set-up: readable lines for people at a terminal, JSON lines for services and log files.

``configure_logging(level, json_lines=None, log_file=PATH)``: stderr gets JSON lines when
``json_lines`` is true, readable lines when false, and by default readable lines only when stderr
is a terminal (a service under systemd or Docker logs JSON). ``log_file`` adds a size-rotated file
(``max_bytes``, ``backups`` old files kept) that always holds JSON lines.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from datetime import UTC, datetime
from pathlib import Path

from autotrader.domain.errors import ConfigError
from autotrader.domain.redact import redact

_BOUND_FIELDS = ("symbol", "client_order_id", "signal_id", "strategy")
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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


def configure_logging(
    level: str = "WARNING",
    *,
    json_lines: bool | None = False,
    log_file: str | Path | None = None,
    max_bytes: int = 20 * 1_048_576,
    backups: int = 5,
) -> None:
    """Send the ``autotrader`` loggers to stderr (and ``log_file``) at ``level`` (idempotent).

    ``json_lines=None`` picks JSON unless stderr is a terminal. An unwritable ``log_file`` is a
    ``ConfigError`` in one line.
    """
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    handler: logging.Handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(_TEXT_FORMAT))
    handler.addFilter(RedactingFilter())
    handlers = [handler]
    if log_file is not None:
        path = Path(log_file).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            file_handler = logging.handlers.RotatingFileHandler(
                path, maxBytes=max(1, int(max_bytes)), backupCount=max(1, int(backups)), encoding="utf-8"
            )
        except OSError as e:
            raise ConfigError(f"--log-file {path}: cannot write it ({e.strerror or e})") from None
        file_handler.setFormatter(JsonFormatter())
        file_handler.addFilter(RedactingFilter())
        handlers.append(file_handler)
    root = logging.getLogger("autotrader")
    for old in root.handlers:
        if old not in handlers:
            old.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    root.propagate = False
