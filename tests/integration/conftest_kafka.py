"""Pytest plugin: a real Kafka-protocol broker (Tansu) for the whole session, and a fresh topic per test.

Load it from a test module with ``pytest_plugins = ["conftest_kafka"]``. The broker listens on
127.0.0.1 only, on a free port, with in-memory storage, and is stopped by its PID at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from autotrader.adapters.broker.kafka import ensure_topics
from autotrader.adapters.broker.tansu import TansuBroker


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[TansuBroker]:
    """A running Tansu broker; a missing binary fails the tests with the package to install."""
    with TansuBroker() as broker:
        yield broker


@pytest.fixture
def kafka_url(kafka_broker: TansuBroker) -> str:
    """``kafka://127.0.0.1:PORT/<unique topic>``; the topic and its ``.dlq`` exist with one partition."""
    topic = f"predictions-{uuid.uuid4().hex[:10]}"
    ensure_topics(kafka_broker.bootstrap, [topic, f"{topic}.dlq"], partitions=1)
    return kafka_broker.url(topic)
