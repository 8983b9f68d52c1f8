"""Command-line interface: ``autotrader <command>``. Parses arguments, calls the core, renders with rich.

``autotrader.cli.root`` holds the root command tree (``app``), the data and backtest commands and
the entry point; each other command group lives in its own module and registers itself there.
Shared helpers live in ``autotrader.cli.common`` so no module imports the root back.
"""

from __future__ import annotations

from autotrader.cli.root import app, calendar_years, data_app, run

__all__ = ["app", "calendar_years", "data_app", "main"]


def main() -> None:
    """Console entry point (``autotrader``): runs this package's ``app``."""
    run(app)
