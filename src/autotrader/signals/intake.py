"""Signal intake: what to do with one raw prediction message, and the source protocol the robot reads.

Pure logic, no broker library: the Kafka adapter (``autotrader.adapters.broker.kafka``) and any other
source call ``classify`` on every message, and the robot consumes ``Delivery`` items through the
``SignalSource`` protocol, so it can be tested without a broker.

``classify(raw, now_ms, seen)`` decides, in this order:

1. ``invalid``   - larger than ``MAX_MESSAGE_BYTES``, not UTF-8 JSON, not an object, an object with a
   key given twice, or not a valid ``Prediction`` (strict: unknown fields, a string where a number
   belongs, ``ts`` not integer milliseconds, ``confidence`` outside [0, 1], a field longer than the
   store holds, a horizon over 30 days ...); ``reason`` is ``"too_large"``, ``"invalid_json"`` or
   ``"invalid_schema"`` and ``detail`` says what is wrong, in one line of at most ``MAX_DETAIL_CHARS``;
2. ``duplicate`` - ``seen(id)`` is true: a decision for this signal id was already persisted;
3. ``stale``     - the horizon is over when the message is received: ``now_ms >= ts + horizon``; or (reason
   ``"future"``) it was made more than its horizon ahead of the receiver's clock: the sender and the
   receiver run on different clocks (e.g. a live signal engine beside a replaying demo), so it is not
   a signal about the receiver's market;
4. ``accepted``  - otherwise (a little ahead, within the horizon, is clock skew and accepted).

Delivery contract (at-least-once in, exactly-once out)::

    for delivery in source.poll():
        decision = robot.decide(delivery)          # trade, or skip with delivery.outcome.reason
        store.persist(decision)                    # records delivery.signal_id, so seen() becomes true
        source.commit(delivery)                    # only now: the offset after this message

Handling one message never stops the flow: a message whose decision or persistence still fails
(a poison message) is dead-lettered with a bounded reason by the robot, and its offset committed.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from pydantic import ValidationError

from autotrader.domain.candles import format_ms
from autotrader.signals.prediction import Prediction

MAX_MESSAGE_BYTES = 16_384
"""A valid ``Prediction`` takes well under 1 KiB; anything above this is refused unread."""
MAX_DETAIL_CHARS = 300
"""The longest ``IntakeOutcome.detail``: rejection texts quote at most a short excerpt of the input."""

SeenFn = Callable[[str], bool]
"""``seen(signal_id) -> bool``: true when a decision for that id is already persisted."""


class Verdict(StrEnum):
    """What the intake decided about one message."""

    ACCEPTED = "accepted"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class IntakeOutcome:
    """The verdict on one message, its short machine ``reason`` and a one-line human ``detail``.

    ``reason`` is ``""`` when accepted, ``"invalid_json"`` / ``"invalid_schema"`` when invalid,
    ``"duplicate"`` or ``"stale"`` when skipped. ``prediction`` is set unless the message is invalid.
    """

    verdict: Verdict
    reason: str = ""
    detail: str = ""
    prediction: Prediction | None = None

    @property
    def accepted(self) -> bool:
        return self.verdict is Verdict.ACCEPTED

    @classmethod
    def invalid(cls, reason: str, detail: str) -> IntakeOutcome:
        return cls(Verdict.INVALID, reason, detail)


def classify(raw: bytes | None, now_ms: int, seen: SeenFn) -> IntakeOutcome:
    """Validate ``raw`` strictly as a ``Prediction`` and decide accepted / invalid / duplicate / stale.

    ``now_ms`` is the receipt time (UTC epoch milliseconds, from the caller's clock); ``seen`` is the
    state store's "already decided?" query. Never raises for bad input: that is an ``invalid`` outcome.
    """
    if raw is None:
        return IntakeOutcome.invalid("invalid_json", "empty message (no value)")
    if len(raw) > MAX_MESSAGE_BYTES:
        return IntakeOutcome.invalid("too_large", f"{len(raw)} bytes; a signal may have at most {MAX_MESSAGE_BYTES}")
    try:
        prediction = Prediction.model_validate_json(raw, strict=True)
    except ValidationError as e:
        return _invalid(e)
    if (twice := _repeated_key(raw)) is not None:
        return IntakeOutcome.invalid("invalid_schema", twice)
    if seen(prediction.id):
        return IntakeOutcome(
            Verdict.DUPLICATE, "duplicate", f"signal id {prediction.id!r} was already decided", prediction
        )
    expires_ms = prediction.ts + prediction.horizon_ms
    if now_ms >= expires_ms:
        detail = (
            f"made at {format_ms(prediction.ts)} UTC with horizon {prediction.horizon}, "
            f"over at {format_ms(expires_ms)}; received {format_ms(now_ms)} UTC "
            f"({(now_ms - expires_ms) / 1000:.0f} s late)"
        )
        return IntakeOutcome(Verdict.STALE, "stale", detail, prediction)
    if prediction.ts - now_ms > prediction.horizon_ms:
        detail = (
            f"made at {format_ms(prediction.ts)} UTC, more than its horizon {prediction.horizon} ahead of the "
            f"receiver's clock ({format_ms(now_ms)} UTC): sender and receiver are on different clocks"
        )
        return IntakeOutcome(Verdict.STALE, "future", detail, prediction)
    return IntakeOutcome(Verdict.ACCEPTED, prediction=prediction)


def _repeated_key(raw: bytes) -> str | None:
    """What is wrong when a key of the (already validated) JSON object is given twice, else ``None``.

    The validator keeps the last of repeated keys silently; a message that says two things is refused.
    """
    repeated: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen and not repeated:
                repeated.append(key)
            seen.add(key)
        return dict(items)

    try:
        json.loads(raw, object_pairs_hook=pairs)
    except (ValueError, RecursionError):  # a shadowed value the validator never looked at
        return "a key appears more than once, the first time with a value that cannot be read"
    return f"key {_short(repeated[0])} appears more than once" if repeated else None


def _invalid(error: ValidationError) -> IntakeOutcome:
    problems = error.errors(include_url=False)
    first = problems[0]
    if first["type"] == "json_invalid":
        msg = str(first["msg"]).removeprefix("Invalid JSON: ")
        return IntakeOutcome.invalid("invalid_json", bounded(f"not valid UTF-8 JSON: {msg}"))
    if first["type"] == "model_type":
        return IntakeOutcome.invalid("invalid_schema", f"not a JSON object (got {_short(first.get('input'))})")
    parts = [_problem(p) for p in problems[:3]]
    more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
    return IntakeOutcome.invalid("invalid_schema", bounded("; ".join(parts) + more))


def _problem(problem: Any) -> str:
    field = ".".join(str(p) for p in problem["loc"]) or "message"
    kind = problem["type"]
    if kind == "extra_forbidden":
        return f"unknown field {_short(field)}"
    if kind == "missing":
        return f"missing field {field!r}"
    msg = bounded(str(problem["msg"]).removeprefix("Value error, "), 120)
    return f"{bounded(field, 40)}: {msg} (got {_short(problem.get('input'))})"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value[:limit] if isinstance(value, str | bytes) else value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def bounded(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """``text`` on one line, without control characters, cut to ``limit`` characters (``...`` marks a cut)."""
    line = text[: limit + 1]
    if not line.isprintable():
        line = "".join(c if c.isprintable() else " " for c in line)
    return line if len(line) <= limit else line[: limit - 3] + "..."


MAX_DEAD_LETTER_BYTES = 4096
"""How much of an invalid message a dead-letter record keeps (with the whole message's sha256 and length)."""


@dataclass(frozen=True, slots=True)
class Excerpt:
    """A bounded copy of a message for a dead-letter record: its first bytes, its sha256 and its length."""

    head: bytes
    sha256: str
    length: int

    @property
    def truncated(self) -> bool:
        return len(self.head) < self.length

    def describe(self) -> str:
        """``sha256 <hex>, <n> bytes[, first <k> kept]``: appended to a stored dead letter's detail."""
        kept = f", first {len(self.head)} kept" if self.truncated else ""
        return f"sha256 {self.sha256}, {self.length} bytes{kept}"


def excerpt(raw: bytes | None, limit: int = MAX_DEAD_LETTER_BYTES) -> Excerpt:
    """The first ``limit`` bytes of ``raw`` with the sha256 and length of all of it."""
    data = raw or b""
    return Excerpt(data[:limit], hashlib.sha256(data).hexdigest(), len(data))


class SeenIds:
    """In-memory ``seen`` for tests and for de-duplicating within one session.

    Remembers at most ``capacity`` ids (the oldest are forgotten first); the robot's state store is
    the durable record across restarts.
    """

    def __init__(self, ids: Iterable[str] = (), capacity: int = 1_000_000) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()
        for signal_id in ids:
            self.add(signal_id)

    def seen(self, signal_id: str) -> bool:
        return signal_id in self._ids

    def add(self, signal_id: str) -> None:
        self._ids[signal_id] = None
        self._ids.move_to_end(signal_id)
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)

    def discard(self, signal_id: str) -> None:
        """Forget ``signal_id`` (its message is given back to be decided again)."""
        self._ids.pop(signal_id, None)

    def __contains__(self, signal_id: object) -> bool:
        return signal_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message from a signal source with the intake's verdict and where it came from.

    ``prediction`` is the validated signal for ``accepted`` (and ``duplicate`` / ``stale``, so the skip
    can be recorded against its id), ``None`` for ``invalid``. ``raw`` is the original payload.
    ``dead_letter_error`` is set when an invalid message could not be copied to the dead-letter topic
    after repeated tries and was skipped anyway (the robot records it as a fault).
    """

    prediction: Prediction | None
    outcome: IntakeOutcome
    raw: bytes
    partition: int
    offset: int
    topic: str = ""
    received_ms: int = 0
    key: bytes | None = None
    dead_letter_error: str = ""

    @property
    def signal_id(self) -> str | None:
        return self.prediction.id if self.prediction is not None else None

    @property
    def position(self) -> str:
        """``topic[partition]@offset``: where the message is, for logs and the decision record."""
        return f"{self.topic}[{self.partition}]@{self.offset}"


class SignalSource(Protocol):
    """What the robot reads signals from (Kafka in production; anything with these methods in tests)."""

    def poll(self, timeout_s: float = 1.0, max_messages: int = 500) -> Sequence[Delivery]:
        """The next messages, classified; empty when none arrived within ``timeout_s``."""
        ...

    def commit(self, *deliveries: Delivery) -> bool:
        """Mark these messages done, after their decisions are persisted; ``False`` if it did not stick."""
        ...

    def rewind(self, *deliveries: Delivery) -> None:
        """Give these uncommitted messages back: the next ``poll`` delivers them again (their decision failed)."""
        ...

    def close(self) -> None: ...
