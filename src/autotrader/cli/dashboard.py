"""``autotrader dashboard``: serve the real-time web dashboard of the robot's state store.

The store is found as ``autotrader autotrade`` finds it: ``--db``, else ``POSTGRES_DSN``, else
``$AUTOTRADER_HOME/state.db``. The dashboard only reads it, so it may run beside the robot.
Heavy libraries are imported inside the command.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from autotrader.cli.common import LogBackupsOption, LogFileOption, LogMaxMbOption, SettingsFileOption
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
    config: SettingsFileOption = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option("--allowed-host", help="Host name clients use beyond this machine (default: loopback only)."),
    ] = None,
    log_file: LogFileOption = None,
    log_max_mb: LogMaxMbOption = 20.0,
    log_backups: LogBackupsOption = 5,
) -> None:
    """Serve a live web page of the robot: equity, positions, orders, signals and risk usage.

    Every figure is read from the robot's state store (the one 'autotrader autotrade' writes);
    the page updates itself as the robot writes. Stop it with Ctrl-C. Bound beyond loopback
    (--host 0.0.0.0), every request needs the API token (AUTOTRADER_API_TOKEN, else
    $AUTOTRADER_HOME/api_token): open http://HOST:PORT/?token=TOKEN once.
    """
    import uvicorn

    from autotrader.api.protocol import MAX_HEADER_BYTES, GuardedH11Protocol
    from autotrader.api.security import is_loopback, load_api_token
    from autotrader.config import load_settings
    from autotrader.dashboard import create_app
    from autotrader.domain.redact import redact

    if not 0.05 <= refresh <= 3600:
        raise ConfigError(f"--refresh {refresh:g}: give between 0.05 and 3600 seconds")
    settings = load_settings(config)
    if log_file is not None:
        from autotrader.logs import configure_logging

        configure_logging("INFO", json_lines=None, log_file=log_file, max_bytes=int(log_max_mb * 1_048_576),
                          backups=log_backups)  # fmt: skip
        logging.getLogger("autotrader.dashboard").info("dashboard starting (pid %d)", os.getpid())
    store = open_existing_store(db, settings.home)
    try:
        hosts = list(allowed_host or ())
        token = None
        if not is_loopback(host):
            token = load_api_token(settings.home)
            hosts += [host] if host not in ("0.0.0.0", "::") else []  # noqa: S104 - naming the wildcard
            typer.secho(
                f"warning: the dashboard listens on {host}, beyond this machine: every request needs the API token "
                f"(AUTOTRADER_API_TOKEN, else {settings.home / 'api_token'}; open /?token=TOKEN once), "
                f"and only the Host names {', '.join(['loopback', *hosts])} are answered (add --allowed-host NAME)",
                fg=typer.colors.YELLOW,
                err=True,
            )
        app = create_app(store, refresh_s=refresh, allowed_hosts=hosts, token=token)
        _check_port_free(host, port)
        where = redact(store.url)
        typer.echo(f"AutoTrader dashboard of {where} at http://{_url_host(host)}:{port}/ (Ctrl-C to stop)")
        logging.getLogger("autotrader.dashboard").info("dashboard of %s at http://%s:%d/", where, host, port)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                http=GuardedH11Protocol,
                h11_max_incomplete_event_size=MAX_HEADER_BYTES,
                ws="none",
                log_level="warning",
                timeout_graceful_shutdown=2,
                limit_concurrency=64,
                server_header=False,
            )
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
