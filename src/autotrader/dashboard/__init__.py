"""The real-time web dashboard of the trading robot: equity, positions, orders, signals, risk usage.

    from autotrader.dashboard import create_app
    app = create_app(open_state_store(url), refresh_s=1.0)

It only reads the robot's state store (the same one ``autotrader autotrade`` writes), so it can run
beside the robot, or after it, in another process. ``autotrader dashboard`` serves it.
"""

from autotrader.dashboard.app import create_app
from autotrader.dashboard.snapshot import build_snapshot

__all__ = ["build_snapshot", "create_app"]
