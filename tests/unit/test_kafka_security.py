"""Kafka security settings: from the environment or the config file, to the consumer and the dead-letter
producer alike, refused in one line when inconsistent, and the password never logged."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from autotrader.adapters.broker import kafka
from autotrader.adapters.broker.kafka import KafkaSignalSource
from autotrader.config import load_settings
from autotrader.domain.errors import ConfigError

PASSWORD = "pw-9f3c1e7d"  # a test secret, looked for in every log line


def sasl_env(tmp_path: Path, **changes: str) -> dict[str, str]:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    env = {
        "AUTOTRADER_HOME": str(tmp_path),
        "AUTOTRADER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "AUTOTRADER_KAFKA_SASL_MECHANISM": "scram-sha-512",
        "AUTOTRADER_KAFKA_SASL_USERNAME": "robot",
        "AUTOTRADER_KAFKA_SASL_PASSWORD": PASSWORD,
        "AUTOTRADER_KAFKA_SSL_CA_LOCATION": str(ca),
    }
    env.update(changes)
    return {k: v for k, v in env.items() if v}


def test_kafka_settings_from_environment_client_config(tmp_path: Path) -> None:
    settings = load_settings(env=sasl_env(tmp_path))
    assert settings.kafka.client_config() == {
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "robot",
        "sasl.password": PASSWORD,
        "ssl.ca.location": str(tmp_path / "ca.pem"),
    }
    assert PASSWORD not in repr(settings)


def test_kafka_settings_from_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[kafka]\nsecurity_protocol = "sasl_plaintext"\nsasl_mechanism = "PLAIN"\n'
        'sasl_username = "robot"\nsasl_password = "from-file"\n'
    )
    settings = load_settings(config, env={"AUTOTRADER_HOME": str(tmp_path)})
    assert settings.kafka.client_config()["sasl.password"] == "from-file"


def test_kafka_settings_default_plaintext() -> None:
    assert load_settings(env={}).kafka.client_config() == {"security.protocol": "plaintext"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"AUTOTRADER_KAFKA_SECURITY_PROTOCOL": "tls"}, "kafka.security_protocol"),
        ({"AUTOTRADER_KAFKA_SASL_MECHANISM": "MD5"}, "kafka.sasl_mechanism"),
        ({"AUTOTRADER_KAFKA_SASL_PASSWORD": ""}, "needs sasl_mechanism, sasl_username and sasl_password"),
        ({"AUTOTRADER_KAFKA_SECURITY_PROTOCOL": "ssl"}, "SASL settings need security_protocol"),
        ({"AUTOTRADER_KAFKA_SSL_CA_LOCATION": "/nonexistent/ca.pem"}, "is not a file"),
    ],
)
def test_kafka_settings_inconsistent_config_error_without_password(
    tmp_path: Path, changes: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as e:
        load_settings(env=sasl_env(tmp_path, **changes))
    assert PASSWORD not in str(e.value)
    assert "\n" not in str(e.value)


class Recorder:
    configs: list[tuple[str, dict[str, Any]]] = []

    def __init__(self, config: dict[str, Any]) -> None:
        self.configs.append((type(self).__name__, dict(config)))

    def subscribe(self, *_args: Any, **_kw: Any) -> None: ...

    def flush(self, *_args: Any) -> int:
        return 0

    def close(self) -> None: ...


class FakeConsumer(Recorder): ...


class FakeProducer(Recorder): ...


def test_kafka_source_security_config_reaches_consumer_and_dead_letter_producer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kafka, "Consumer", FakeConsumer)
    monkeypatch.setattr(kafka, "Producer", FakeProducer)
    Recorder.configs = []
    security = load_settings(env=sasl_env(tmp_path)).kafka.client_config()
    source = KafkaSignalSource("kafka://127.0.0.1:9092/predictions", create_topics=False, config=security)
    source._dlq_producer()
    source.close()
    kinds = [kind for kind, _ in Recorder.configs]
    assert kinds == ["FakeConsumer", "FakeProducer"]
    for _, config in Recorder.configs:
        assert {k: config[k] for k in security} == security


def test_kafka_source_sasl_failures_never_log_the_password(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    security = load_settings(
        env=sasl_env(tmp_path, AUTOTRADER_KAFKA_SECURITY_PROTOCOL="sasl_plaintext", AUTOTRADER_KAFKA_SSL_CA_LOCATION="")
    ).kafka.client_config()
    caplog.set_level(logging.DEBUG)
    source = KafkaSignalSource(
        "kafka://127.0.0.1:1/predictions", create_topics=False, config=security, session_timeout_ms=3000
    )
    try:
        assert source.poll(timeout_s=1.5) == []
    finally:
        source.close()
    assert caplog.records  # the unreachable broker was reported
    assert all(PASSWORD not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("location", ["x" * 5000, "ca-\ud800.pem"])
def test_kafka_settings_unusable_ca_path_config_error(tmp_path: Path, location: str) -> None:
    env = sasl_env(tmp_path, AUTOTRADER_KAFKA_SSL_CA_LOCATION=location)
    with pytest.raises(ConfigError, match="is not a file"):
        load_settings(env=env)
