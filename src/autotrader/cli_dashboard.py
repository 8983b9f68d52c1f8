"""``autotrader dashboard``: serve the real-time web dashboard of the robot's state store.

The store is found as ``autotrader autotrade`` finds it: ``--db``, else ``POSTGRES_DSN``, else
``$AUTOTRADER_HOME/state.db``. The dashboard only reads it, so it may run beside the robot.
Heavy libraries are imported inside the command.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from autotrader.domain.errors import ConfigError

if TYPE_CHECKING:
    from autotrader.adapters.state import SqlStateStore


def register(app: typer.Typer) -> None:
    """Add the ``dashboard`` command to ``app``."""
    app.command("dashboard")(dashboard)


def dashboard(
    db: Annotated[
        str | None,
        typer.Option(help="State store URL or SQLite path (default: POSTGRES_DSN, else $AUTOTRADER_HOME/state.db)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on.", min=1, max=65535)] = 8050,
    refresh: Annotated[float, typer.Option(help="Seconds between checks of the store for changes.")] = 1.0,
    config: Annotated[Path | None, typer.Option("--config", help="TOML settings file.")] = None,
) -> None:
    """Serve a live web page of the robot: equity, positions, orders, signals and risk usage.

    Every figure is read from the robot's state store (the one 'autotrader autotrade' writes);
    the page updates itself as the robot writes. Stop it with Ctrl-C.
    """
    import uvicorn

    from autotrader.config import load_settings
    from autotrader.dashboard import create_app

    if not 0.05 <= refresh <= 3600:
        raise ConfigError(f"--refresh {refresh:g}: give between 0.05 and 3600 seconds")
    settings = load_settings(config)
    store = open_existing_store(db, settings.home)
    try:
        app = create_app(store, refresh_s=refresh)
        _check_port_free(host, port)
        typer.echo(f"AutoTrader dashboard of {store.url} at http://{_url_host(host)}:{port}/ (Ctrl-C to stop)")
        server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=port, ws="none", log_level="warning", timeout_graceful_shutdown=2)
        )
        server.run()
    finally:
        store.close()


def open_existing_store(db: str | None, home: Path) -> SqlStateStore:
    """Open the robot's store; a SQLite file that does not exist yet is refused, not created."""
    from sqlalchemy.engine import make_url

    from autotrader.adapters.state import open_state_store, state_url

    url = state_url(home, db)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise ConfigError(f"state store {url}: an in-memory store belongs to one process; give a file")
        if not Path(database).is_file():
            raise ConfigError(
                f"no state store at {database}: the robot has not run with it yet "
                "(start 'autotrader autotrade', or point --db / POSTGRES_DSN at its store)"
            )
    return open_state_store(url)


def _check_port_free(host: str, port: int) -> None:
    import socket  # lazily: `autotrader --help` does not pay for it

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            why = "is in use" if e.errno == errno.EADDRINUSE else f"cannot be opened ({e.strerror})"
            raise ConfigError(f"--host {host} --port {port}: the address {why}; choose another --port") from None


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):  # noqa: S104 - only naming the address a user chose
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
