"""Prediction signals over Kafka (confluent-kafka): the robot's source and a publisher.

``KafkaSignalSource`` reads ``Prediction`` JSON messages from ``kafka://HOST:PORT/TOPIC``, classifies
each one with ``autotrader.signals.intake.classify`` and hands the robot ``Delivery`` items. Offsets
are never committed automatically: the robot persists its decision (trade, or skip with the reason)
and only then calls ``commit(delivery)``. A crash in between means the message comes again after the
restart (at-least-once in); the robot's ``seen(signal_id)`` then reports it as a duplicate, so it is
acted on once (exactly-once out)::

    with KafkaSignalSource("kafka://127.0.0.1:9092/predictions", seen=store.seen) as source:
        while running:
            for delivery in source.poll(timeout_s=1.0):
                store.persist(robot.decide(delivery))     # every delivery gets a persisted decision
                source.commit(delivery)

Invalid messages (too large, not JSON, not a valid ``Prediction``) are also copied to ``<topic>.dlq``
before ``poll`` returns them. The record is bounded whatever the message: the value is the original
bytes cut to ``MAX_DEAD_LETTER_BYTES`` (4 KiB), the key to 256 bytes, and headers say why and where
from (``x-dlq-reason``, ``x-dlq-detail`` (at most 300 characters), ``x-dlq-topic``, ``x-dlq-partition``,
``x-dlq-offset``, ``x-dlq-received-ms``) and what the whole message was (``x-dlq-sha256``,
``x-dlq-length``, ``x-dlq-truncated``). They are counted and logged and never stop the source. If the
dead-letter topic cannot be written, ``poll`` returns nothing and rewinds, so the batch is retried on
the next call (a message may then be dead-lettered twice; its partition/offset headers identify it);
after ``dlq_attempts`` failed tries for the same message it is skipped instead, never looped on: the
delivery carries ``dead_letter_error`` (the robot records a fault) and ``stats["dlq_skipped"]`` counts it.

Security: ``kafka_client_config(settings.kafka)`` turns the ``[kafka]`` settings (``security.protocol``,
SASL mechanism, user and password, CA file; see ``autotrader.config``) into librdkafka settings; pass
them as ``config`` and they reach the consumer, the dead-letter producer and the admin client. They
are never logged.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from autotrader.domain.errors import BrokerError, ConfigError
from autotrader.signals.intake import (
    Delivery,
    SeenFn,
    SeenIds,
    Verdict,
    bounded,
    classify,
    excerpt,
)
from autotrader.signals.prediction import Prediction

logger = logging.getLogger(__name__)

DLQ_SUFFIX = ".dlq"
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_HOSTPORT = re.compile(r"^[A-Za-z0-9._-]+(:\d{1,5})?$")
_SESSION_IDS = 100_000  # ids accepted in this session, remembered to drop duplicates within a batch
DLQ_ATTEMPTS = 3  # tries to dead-letter one message before it is skipped (and recorded as a fault)
_DLQ_KEY_BYTES = 256


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# ------------------------------------------------------------------------------------------ addresses


@dataclass(frozen=True, slots=True)
class KafkaAddress:
    """A parsed ``kafka://HOST:PORT[,HOST:PORT...]/TOPIC``."""

    bootstrap: str
    topic: str

    @property
    def dlq_topic(self) -> str:
        return self.topic + DLQ_SUFFIX

    def __str__(self) -> str:
        return f"kafka://{self.bootstrap}/{self.topic}"


def parse_kafka_url(url: str) -> KafkaAddress:
    """Parse ``kafka://HOST:PORT/TOPIC`` (several comma-separated brokers allowed; port defaults to 9092).

    A malformed address is a ``ConfigError`` in one line.
    """
    text = url.strip()
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() != "kafka":
        raise ConfigError(f"signal source {url!r}: expected kafka://HOST:PORT/TOPIC")
    hosts, slash, topic = rest.partition("/")
    if not slash or not topic:
        raise ConfigError(f"signal source {url!r}: no topic; expected kafka://HOST:PORT/TOPIC")
    if not _TOPIC.match(topic):
        raise ConfigError(f"signal source {url!r}: topic {topic!r} may only use letters, digits, '.', '_' and '-'")
    brokers = []
    for host in hosts.split(","):
        host = host.strip()
        if not host or not _HOSTPORT.match(host):
            raise ConfigError(f"signal source {url!r}: bad broker address {host!r}; expected HOST:PORT")
        if ":" in host and not 0 < int(host.rpartition(":")[2]) < 65536:
            raise ConfigError(f"signal source {url!r}: port out of range in {host!r}")
        brokers.append(host if ":" in host else f"{host}:9092")
    return KafkaAddress(",".join(brokers), topic)


def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    *,
    partitions: int = 1,
    timeout_s: float = 10.0,
    config: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet; returns the ones created. Existing topics are left alone."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **(config or {})})
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    wanted = [t for t in dict.fromkeys(topics) if t not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in wanted],
        request_timeout=timeout_s,
    )
    created = []
    for topic, future in futures.items():
        try:
            future.result(timeout=timeout_s)
            created.append(topic)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise BrokerError(f"could not create Kafka topic {topic!r} on {bootstrap}: {e.args[0].str()}") from e
    return created


# --------------------------------------------------------------------------------------------- source


class KafkaSignalSource:
    """Classified prediction messages from one Kafka topic, committed only when the robot says so.

    * ``url``: ``kafka://HOST:PORT/TOPIC``;
    * ``group_id``: the consumer group; its committed offsets are where a restart resumes;
    * ``seen``: the state store's ``seen(signal_id) -> bool`` (already decided?); without it, only
      duplicates within this session are caught;
    * ``clock_ms``: receipt time in UTC epoch ms (injectable for tests), used for staleness;
    * ``dlq_topic``: where invalid messages go (default ``<topic>.dlq``);
    * ``create_topics``: create the topic and the DLQ when missing (a failure is only logged);
    * ``session_timeout_ms``: consumer-group session timeout (2000-6000 suits Tansu, which completes a
      group join after about half of it);
    * ``config``: extra librdkafka settings (security, etc.), applied last, to the consumer and the
      dead-letter producer alike (``kafka_client_config`` builds the security ones);
    * ``dlq_attempts``: tries to dead-letter one invalid message before skipping it.

    A group with no committed offset starts at the topic's earliest message (old ones come out as
    ``stale``). ``stats`` counts messages by verdict plus ``dead_lettered``, ``dlq_failures``,
    ``dlq_skipped``, ``commit_failures`` and ``errors``.
    """

    def __init__(
        self,
        url: str,
        *,
        group_id: str = "autotrader-robot",
        seen: SeenFn | None = None,
        clock_ms: Callable[[], int] = _now_ms,
        dlq_topic: str | None = None,
        create_topics: bool = True,
        session_timeout_ms: int = 6000,
        config: Mapping[str, Any] | None = None,
        dlq_attempts: int = DLQ_ATTEMPTS,
    ) -> None:
        self.address = parse_kafka_url(url)
        self.dlq_topic = dlq_topic or self.address.dlq_topic
        self.dlq_attempts = max(1, dlq_attempts)
        self._dlq_tries: dict[tuple[str, int, int], int] = {}
        if not _TOPIC.match(self.dlq_topic):
            raise ConfigError(f"dead-letter topic {self.dlq_topic!r} may only use letters, digits, '.', '_' and '-'")
        self._seen = seen
        self._clock_ms = clock_ms
        self._extra = dict(config or {})
        self._session_ids = SeenIds(capacity=_SESSION_IDS)
        self._committed: dict[tuple[str, int], int] = {}
        self._counts: Counter[str] = Counter()
        self._producer: Producer | None = None
        if create_topics:
            try:
                ensure_topics(self.address.bootstrap, [self.address.topic, self.dlq_topic], config=self._extra)
            except (KafkaException, BrokerError) as e:
                logger.warning("could not check or create topics on %s: %s", self.address.bootstrap, e)
        self._consumer: Consumer | None = Consumer(
            {
                "bootstrap.servers": self.address.bootstrap,
                "group.id": group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": session_timeout_ms,
                "heartbeat.interval.ms": max(100, session_timeout_ms // 3),
                "error_cb": self._on_client_error,
                **self._extra,
            }
        )
        self._consumer.subscribe([self.address.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)

    # ------------------------------------------------------------------------------------- reading

    def poll(self, timeout_s: float = 1.0, max_messages: int = 500) -> list[Delivery]:
        """Up to ``max_messages`` classified messages; empty if none arrived within ``timeout_s``.

        Invalid ones are already on the dead-letter topic when this returns (or, after ``dlq_attempts``
        failed tries, carry ``dead_letter_error``). Every delivery still
        needs a persisted decision and then ``commit``. If ``seen`` raises (state store down), the
        batch is rewound before the error propagates, so nothing is skipped.
        """
        consumer = self._open_consumer()
        messages = consumer.consume(num_messages=max_messages, timeout=timeout_s)
        received_ms = self._clock_ms()
        try:
            deliveries = self._classify(messages, received_ms)
        except BaseException:
            self._rewind([(m.topic(), m.partition(), m.offset()) for m in messages if m.error() is None])
            raise
        invalid = [d for d in deliveries if d.outcome.verdict is Verdict.INVALID]
        if invalid:
            failed = self._dead_letter(invalid)
            if any(self._dlq_tries.get(where, 0) < self.dlq_attempts for where in failed):
                self._rewind([_where(d) for d in deliveries])
                return []
            deliveries = [
                self._skip_dead_letter(d, failed[_where(d)]) if _where(d) in failed else d for d in deliveries
            ]
        for delivery in deliveries:
            self._record(delivery)
        return deliveries

    def _classify(self, messages: Sequence[Message], received_ms: int) -> list[Delivery]:
        batch_ids: set[str] = set()  # accepted in this batch, not yet recorded in the session

        def seen(signal_id: str) -> bool:
            if signal_id in batch_ids or signal_id in self._session_ids:
                return True
            return bool(self._seen and self._seen(signal_id))

        deliveries: list[Delivery] = []
        for message in messages:
            if (error := message.error()) is not None:
                self._on_message_error(error)
                continue
            raw = message.value()
            outcome = classify(raw, received_ms, seen)
            if outcome.prediction is not None and outcome.accepted:
                batch_ids.add(outcome.prediction.id)
            deliveries.append(
                Delivery(
                    prediction=outcome.prediction,
                    outcome=outcome,
                    raw=raw or b"",
                    partition=message.partition(),
                    offset=message.offset(),
                    topic=message.topic(),
                    received_ms=received_ms,
                    key=message.key(),
                )
            )
        return deliveries

    def _record(self, delivery: Delivery) -> None:
        outcome = delivery.outcome
        self._counts[outcome.verdict.value] += 1
        prediction = delivery.prediction
        if outcome.verdict is Verdict.INVALID:
            self._counts["dead_lettered"] += 1
            logger.warning(
                "invalid signal at %s dead-lettered to %s: %s: %s",
                delivery.position,
                self.dlq_topic,
                outcome.reason,
                outcome.detail,
            )
        elif prediction is not None and outcome.accepted:
            self._session_ids.add(prediction.id)
            logger.debug("signal %s accepted at %s", prediction.id, delivery.position)
        elif prediction is not None:
            logger.info(
                "signal %s skipped (%s) at %s: %s",
                prediction.id,
                outcome.reason,
                delivery.position,
                outcome.detail,
                extra={"signal_id": prediction.id, "symbol": prediction.symbol},
            )

    def _dead_letter(self, deliveries: Sequence[Delivery]) -> dict[tuple[str, int, int], str]:
        """Copy ``deliveries`` to the dead-letter topic; where the failed ones are, with why (empty: all written).

        Each failure counts one try against the message (by topic, partition and offset).
        """
        producer = self._dlq_producer()
        failed: dict[tuple[str, int, int], str] = {}

        def confirm(d: Delivery) -> Callable[[KafkaError | None, Any], None]:
            def on_delivery(error: KafkaError | None, _message: Any) -> None:
                if error is not None:
                    failed.setdefault(_where(d), error.str())

            return on_delivery

        queued = []
        for d in deliveries:
            value, key, headers = _dlq_record(d)
            try:
                producer.produce(self.dlq_topic, value=value, key=key, headers=headers, on_delivery=confirm(d))
                queued.append(d)
            except (KafkaException, BufferError) as e:
                failed[_where(d)] = bounded(str(e), 200)
        try:
            if producer.flush(10.0):
                for d in queued:
                    failed.setdefault(_where(d), "not confirmed within 10 s")
        except KafkaException as e:
            for d in queued:
                failed.setdefault(_where(d), bounded(str(e), 200))
        self._count_tries(deliveries, failed)
        if failed:
            self._counts["dlq_failures"] += 1
            logger.warning(
                "could not write %d of %d invalid message(s) to %s (%s)",
                len(failed),
                len(deliveries),
                self.dlq_topic,
                next(iter(failed.values())),
            )
        return failed

    def dead_letter(self, delivery: Delivery, reason: str, detail: str) -> bool:
        """Copy a delivery the robot could not handle (a poison message) to the dead-letter topic.

        The record is bounded like any other; one try, ``False`` (and logged) if it was not written.
        """
        outcome = dataclasses.replace(delivery.outcome, reason=reason, detail=detail)
        failed = self._dead_letter([dataclasses.replace(delivery, outcome=outcome)])
        self._dlq_tries.pop(_where(delivery), None)
        if not failed:
            self._counts["dead_lettered"] += 1
        return not failed

    def _count_tries(self, deliveries: Sequence[Delivery], failed: Mapping[tuple[str, int, int], str]) -> None:
        if len(self._dlq_tries) > 10_000:  # positions of revoked partitions never come back: forget them
            self._dlq_tries.clear()
        for d in deliveries:
            where = _where(d)
            if where in failed:
                self._dlq_tries[where] = self._dlq_tries.get(where, 0) + 1
            else:
                self._dlq_tries.pop(where, None)

    def _skip_dead_letter(self, d: Delivery, problem: str) -> Delivery:
        """Give up on dead-lettering ``d`` after ``dlq_attempts`` tries: deliver it marked, never loop on it."""
        self._dlq_tries.pop(_where(d), None)
        self._counts["dlq_skipped"] += 1
        logger.error(
            "invalid signal at %s skipped without a dead-letter copy after %d tries: %s",
            d.position,
            self.dlq_attempts,
            problem,
        )
        return dataclasses.replace(d, dead_letter_error=f"not written to {self.dlq_topic}: {problem}")

    def rewind(self, *deliveries: Delivery) -> None:
        """Give ``deliveries`` back, uncommitted: the next ``poll`` reads them again (the store failed on them)
        and judges them afresh (this session no longer counts their ids as seen; the store still does
        for any whose decision it did record)."""
        for d in deliveries:
            if d.signal_id is not None:
                self._session_ids.discard(d.signal_id)
        self._rewind([_where(d) for d in deliveries])

    def _rewind(self, positions: Iterable[tuple[str, int, int]]) -> None:
        """Seek each partition back to the first of ``positions`` so the next ``poll`` reads them again."""
        first: dict[tuple[str, int], int] = {}
        for topic, partition, offset in positions:
            first[(topic, partition)] = min(first.get((topic, partition), offset), offset)
        consumer = self._open_consumer()
        for (topic, partition), offset in first.items():
            try:
                consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as e:  # partition revoked meanwhile: its new owner reads from the commit
                logger.warning("could not rewind %s[%d] to %d: %s", topic, partition, offset, e)

    # ----------------------------------------------------------------------------------- committing

    def commit(self, *deliveries: Delivery) -> bool:
        """Synchronously commit, per partition, the offset after the latest of ``deliveries``.

        Call it only after each delivery's decision is persisted. Offsets at or below what this
        source already committed are ignored. Returns ``False`` (and logs) if the broker refused or
        could not be reached: the messages will then come again after a restart or rebalance, and
        ``seen`` turns them into duplicates.
        """
        wanted: dict[tuple[str, int], int] = {}
        for d in deliveries:
            tp = (d.topic or self.address.topic, d.partition)
            wanted[tp] = max(wanted.get(tp, 0), d.offset + 1)
        offsets = [
            TopicPartition(topic, partition, offset)
            for (topic, partition), offset in wanted.items()
            if offset > self._committed.get((topic, partition), -1)
        ]
        if not offsets:
            return True
        try:
            result = self._open_consumer().commit(offsets=offsets, asynchronous=False)
        except KafkaException as e:
            self._counts["commit_failures"] += 1
            logger.warning("offset commit failed for %s: %s", _describe(offsets), e.args[0].str())
            return False
        ok = True
        for tp in result or offsets:
            if tp.error is not None:
                ok = False
                logger.warning("offset commit failed for %s[%d]: %s", tp.topic, tp.partition, tp.error.str())
            else:
                self._committed[(tp.topic, tp.partition)] = tp.offset
        if not ok:
            self._counts["commit_failures"] += 1
        return ok

    # ---------------------------------------------------------------------------------- callbacks

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._committed.pop((tp.topic, tp.partition), None)
        logger.info("assigned %s", _describe(partitions))

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._committed.pop((tp.topic, tp.partition), None)
        logger.info("revoked %s", _describe(partitions))

    def _on_client_error(self, error: KafkaError) -> None:
        self._counts["errors"] += 1
        logger.warning("Kafka client (%s): %s", self.address.bootstrap, error.str())

    def _on_message_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            return
        self._counts["errors"] += 1
        if error.fatal():
            raise BrokerError(f"Kafka consumer on {self.address}: fatal error: {error.str()}")
        logger.warning("Kafka consumer on %s: %s", self.address, error.str())

    # ---------------------------------------------------------------------------------- lifecycle

    @property
    def stats(self) -> dict[str, int]:
        """Counts since start: ``accepted``, ``invalid``, ``duplicate``, ``stale``, ``dead_lettered``, ..."""
        return dict(self._counts)

    def _open_consumer(self) -> Consumer:
        if self._consumer is None:
            raise RuntimeError("the signal source is closed")
        return self._consumer

    def _dlq_producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(_producer_config(self.address.bootstrap, self._extra))
        return self._producer

    def close(self) -> None:
        """Leave the consumer group (nothing is committed here) and release the clients. Idempotent."""
        consumer, self._consumer = self._consumer, None
        producer, self._producer = self._producer, None
        if producer is not None:
            _close_producer(producer, 5.0)
        if consumer is not None:
            consumer.close()

    def __enter__(self) -> KafkaSignalSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _where(d: Delivery) -> tuple[str, int, int]:
    return (d.topic, d.partition, d.offset)


def _dlq_record(d: Delivery) -> tuple[bytes, bytes | None, list[tuple[str, bytes]]]:
    """The dead-letter record of ``d``: value, key and headers, bounded whatever the message's size."""
    head = excerpt(d.raw)
    key = d.key[:_DLQ_KEY_BYTES] if d.key is not None else None
    headers = [
        ("x-dlq-reason", bounded(d.outcome.reason, 100).encode()),
        ("x-dlq-detail", bounded(d.outcome.detail).encode()),
        ("x-dlq-topic", d.topic.encode()),
        ("x-dlq-partition", str(d.partition).encode()),
        ("x-dlq-offset", str(d.offset).encode()),
        ("x-dlq-received-ms", str(d.received_ms).encode()),
        ("x-dlq-sha256", head.sha256.encode()),
        ("x-dlq-length", str(head.length).encode()),
        ("x-dlq-truncated", b"true" if head.truncated else b"false"),
    ]
    return head.head, key, headers


def _close_producer(producer: Producer, timeout_s: float) -> None:
    """Flush for up to ``timeout_s``, drop what is still queued (logged), and release the producer."""
    pending = producer.flush(timeout_s)
    if pending:
        logger.warning("dropping %d unconfirmed message(s) on close", pending)
        producer.purge()
        producer.flush(0)
    producer.close()


def _describe(partitions: Iterable[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]@{tp.offset}" for tp in partitions) or "nothing"


def _producer_config(bootstrap: str, extra: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "partitioner": "murmur2_random",  # the Java client's partitioner: same symbol, same partition
        "linger.ms": 5,
        **extra,
    }


# ------------------------------------------------------------------------------------------ publisher


class KafkaSignalPublisher:
    """Publishes ``Prediction`` JSON to ``kafka://HOST:PORT/TOPIC``, keyed by symbol, and waits for acks.

    Keying by symbol keeps each symbol's predictions in order on one partition. ``publish`` returns
    only when the broker confirmed every message, or raises ``BrokerError``.
    """

    def __init__(self, url: str, *, timeout_s: float = 10.0, config: Mapping[str, Any] | None = None) -> None:
        self.address = parse_kafka_url(url)
        self.timeout_s = timeout_s
        self._producer: Producer | None = Producer(_producer_config(self.address.bootstrap, config or {}))
        self._errors: list[str] = []

    def publish(self, predictions: Iterable[Prediction]) -> int:
        """Send ``predictions`` and wait for the broker's acknowledgement; returns how many were sent."""
        n = 0
        for prediction in predictions:
            self.send_raw(prediction.model_dump_json().encode(), key=prediction.symbol.encode())
            n += 1
        self.flush()
        return n

    def send_raw(
        self, value: bytes | None, key: bytes | None = None, headers: Mapping[str, bytes] | None = None
    ) -> None:
        """Queue any bytes (tests use it for malformed messages); ``flush`` confirms delivery."""
        producer = self._open()
        try:
            producer.produce(
                self.address.topic,
                value=value,
                key=key,
                headers=dict(headers or {}),
                on_delivery=self._on_delivery,
            )
        except BufferError:  # local queue full: make room, then retry once
            producer.flush(self.timeout_s)
            producer.produce(
                self.address.topic,
                value=value,
                key=key,
                headers=dict(headers or {}),
                on_delivery=self._on_delivery,
            )
        except KafkaException as e:
            raise BrokerError(f"could not queue a message for {self.address}: {e.args[0].str()}") from e
        producer.poll(0)

    def flush(self) -> None:
        """Wait until every queued message is acknowledged; ``BrokerError`` if any failed or timed out."""
        pending = self._open().flush(self.timeout_s)
        errors, self._errors = self._errors, []
        if pending or errors:
            problem = errors[0] if errors else f"{pending} message(s) unconfirmed after {self.timeout_s:g} s"
            raise BrokerError(f"publishing to {self.address} failed: {problem}")

    def _on_delivery(self, error: KafkaError | None, _message: Any) -> None:
        if error is not None:
            self._errors.append(error.str())

    def _open(self) -> Producer:
        if self._producer is None:
            raise RuntimeError("the publisher is closed")
        return self._producer

    def close(self) -> None:
        """Wait up to ``timeout_s`` for what is queued, then release the producer. Idempotent."""
        producer, self._producer = self._producer, None
        if producer is not None:
            _close_producer(producer, self.timeout_s)

    def __enter__(self) -> KafkaSignalPublisher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# ------------------------------------------------------------------------------------------------ tail


@dataclass(frozen=True, slots=True)
class TailedMessage:
    """A message as read by ``tail_messages`` (for debugging and tests)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes] = field(default_factory=dict)


def tail_messages(
    url: str,
    *,
    from_beginning: bool = True,
    idle_timeout_s: float | None = 5.0,
    max_messages: int | None = None,
    config: Mapping[str, Any] | None = None,
) -> Iterator[TailedMessage]:
    """Read a topic without joining a group or committing anything.

    Starts at the beginning (or the end) of every partition; stops after ``max_messages`` or when
    nothing arrived for ``idle_timeout_s`` (``None``: follow forever).
    """
    address = parse_kafka_url(url)
    consumer = Consumer(
        {
            "bootstrap.servers": address.bootstrap,
            "group.id": f"autotrader-tail-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            **(config or {}),
        }
    )
    try:
        metadata = consumer.list_topics(address.topic, timeout=10.0)
        topic = metadata.topics.get(address.topic)
        if topic is None or topic.error is not None:
            problem = topic.error.str() if topic is not None and topic.error is not None else "not found"
            raise BrokerError(f"topic {address.topic!r} on {address.bootstrap}: {problem}")
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([TopicPartition(address.topic, p, start) for p in sorted(topic.partitions)])
        yield from _read(consumer, idle_timeout_s, max_messages)
    finally:
        consumer.close()


def _read(consumer: Consumer, idle_timeout_s: float | None, max_messages: int | None) -> Iterator[TailedMessage]:
    count = 0
    last = time.monotonic()
    while max_messages is None or count < max_messages:
        message = consumer.poll(0.2)
        if message is None:
            if idle_timeout_s is not None and time.monotonic() - last >= idle_timeout_s:
                return
            continue
        if (error := message.error()) is not None:
            if error.fatal():
                raise BrokerError(f"Kafka consumer: fatal error: {error.str()}")
            continue
        last = time.monotonic()
        count += 1
        kind, ts = message.timestamp()
        yield TailedMessage(
            topic=message.topic(),
            partition=message.partition(),
            offset=message.offset(),
            timestamp_ms=ts if kind != 0 else None,
            key=message.key(),
            value=message.value(),
            headers={k: v or b"" for k, v in (message.headers() or [])},
        )
