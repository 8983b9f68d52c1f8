"""What the robot stores about a message it could not act on: bounded, storable on SQLite and PostgreSQL.

A dead letter keeps the first ``MAX_DEAD_LETTER_BYTES`` of the message (decoded, with NUL and
undecodable bytes replaced, since PostgreSQL text cannot hold them), the sha256 and length of the
whole message, and a one-line reason and detail cut to what the ``dead_letters`` table holds.
"""

from __future__ import annotations

from autotrader.live.records import DeadLetter
from autotrader.signals.intake import Delivery, bounded, excerpt

MAX_REASON_CHARS = 100  # dead_letters.reason
MAX_SOURCE_CHARS = 300  # dead_letters.source


def dead_letter(delivery: Delivery, reason: str, detail: str) -> DeadLetter:
    """The store's record of ``delivery`` rejected for ``reason`` (a short code) with ``detail`` (one line)."""
    head = excerpt(delivery.raw)
    text = head.head.decode("utf-8", "replace").replace("\x00", "\ufffd")
    return DeadLetter(
        bounded(delivery.position, MAX_SOURCE_CHARS),
        delivery.received_ms,
        bounded(reason, MAX_REASON_CHARS),
        f"{bounded(detail)} ({head.describe()})",
        text,
    )


def failure_detail(error: BaseException) -> str:
    """``ErrorType: message`` on one bounded line (the exception text may quote the whole bad value)."""
    return bounded(f"{type(error).__name__}: {error}")
