"""A pre-imported parent that forks robot processes on request (for the chaos test).

Starting a robot process from scratch costs seconds (ccxt, numba, Kafka and SQLAlchemy imports);
twenty-odd SIGKILL restarts would take minutes. This process imports and warms everything once,
single-threaded, then forks: each child is a complete robot process running
``autotrader.cli.autotrade.run_robot`` — the same function ``autotrader autotrade`` runs after
parsing its flags — and is killed with a real SIGKILL by the test.

Protocol (one JSON object per line): on stdin ``{"spawn": {...options...}, "log": PATH, "env": {...}}``
answers ``{"pid": N}`` on stdout; ``{"exit": true}`` ends the zygote. Children are reaped
automatically (SIGCHLD ignored).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path


def warm_up() -> None:
    import numpy as np

    import autotrader.adapters.broker.kafka
    import autotrader.adapters.state
    import autotrader.cli.autotrade
    import autotrader.live.robot  # noqa: F401
    from autotrader.adapters.exchange.bybit import _client_class
    from autotrader.risk import policy, rules

    _client_class()
    policy.roll_day_nb(0, 0, 1, 1.0, 1.0)
    policy.mark_risk_nb(0, 1.0, 1.0, 1.0, 0, 0, 0.1, 0.1, 0)
    policy.signal_action_nb(1.0, 0, False, False)
    rules.decide_entry_nb(
        0,
        0.6,
        0.5,
        np.ones((20, 2)),
        19,
        np.zeros(2),
        0,
        1.0,
        1000.0,
        1.0,
        0.1,
        0.7,
        168,
        0,
        0,
        0,
        0.0,
        0.0,
        0.5,
        20,
        0.0,
        0.01,
        2.0,
    )
    rules.entry_quantity_nb(0.1, 1000.0, 1.0, 100.0, 1000.0, 0.001, 0.01, 0.01, 5.0, np.inf)
    rules.correlation_exposure_nb(np.ones((20, 2)), 19, np.ones(2), -1, 0.0, 168)
    rules.venue_quantity_nb(1.0, 1.0, 0.1, 0.1, 5.0)
    rules.round_to_tick_nb(1.0, 0.01)
    rules.round_down_nb(1.0, 0.01)


def child(spec: dict, log_path: str, env: dict[str, str]) -> None:
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.environ.update(env)
    from autotrader.cli.autotrade import RobotOptions, run_robot
    from autotrader.live.robot_config import RobotConfig

    options = RobotOptions(
        config=RobotConfig(**spec["config"]),
        db=spec["db"],
        exchange_url=spec["exchange_url"],
        signals=spec["signals"],
        clock="venue",
        metrics_port=None,
        kill_switch_file=Path(spec["kill_switch_file"]),
        kafka_group=spec.get("kafka_group"),
        kafka_session_timeout_ms=spec.get("kafka_session_timeout_ms", 2000),
        json_logs=True,
        log_level="INFO",
    )
    code = 1
    try:
        code = run_robot(options)
    except BaseException as e:
        print(f"robot failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    finally:
        os._exit(code)


def main() -> None:
    warm_up()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("exit"):
            return
        pid = os.fork()
        if pid == 0:
            child(request["spawn"], request["log"], request.get("env", {}))
        print(json.dumps({"pid": pid}), flush=True)


if __name__ == "__main__":
    main()
