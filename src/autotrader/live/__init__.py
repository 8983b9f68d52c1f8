"""The trading robot: asyncio runtime, order manager, crash-only reconciliation, run-time risk.

Pure of adapters: the exchange (``autotrader.execution.ports.ExchangePort``), the state store
(``autotrader.live.ports.StateStore``), the signal source (``autotrader.signals.intake.SignalSource``)
and the clock are injected by ``autotrader.cli.autotrade``. Decisions go through the same
compiled functions as the backtest (``autotrader.risk.rules``): only the clock and the venue differ.
"""
