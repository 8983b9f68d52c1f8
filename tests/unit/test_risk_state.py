"""Run-time risk state: daily loss (00:00 UTC reset), drawdown halt, kill switch, Kelly statistics."""

from __future__ import annotations

from decimal import Decimal

import pytest

from autotrader.live.records import ClosedTrade
from autotrader.live.risk_state import KillNotPersisted, KillSwitch, RiskState
from autotrader.risk.limits import risk_limits
from autotrader.risk.rules import ACTIVE, DAILY_BLOCKED, HALTED

DAY = 86_400_000
HOUR = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC


def state(**overrides: object) -> RiskState:
    return RiskState(risk_limits("medium", **overrides), 1000.0)  # daily 5 %, drawdown 15 %


def test_risk_state_daily_loss_blocks_until_next_utc_day() -> None:
    risk = state()
    assert risk.mark(1000.0, T0) == []
    [hit] = risk.mark(949.0, T0 + 5 * HOUR)
    assert hit.kind == "daily_loss_hit"
    assert risk.state == DAILY_BLOCKED
    assert risk.mark(960.0, T0 + 23 * HOUR) == []  # still the same UTC day
    assert risk.state == DAILY_BLOCKED
    [reset] = risk.mark(960.0, T0 + DAY)  # 00:00 UTC: the day starts from the previous mark
    assert reset.kind == "daily_reset"
    assert risk.state == ACTIVE
    assert risk.day_start_equity == 960.0


def test_risk_state_drawdown_halts_for_good() -> None:
    risk = state()
    risk.mark(1200.0, T0)
    risk.mark(1150.0, T0 + DAY)
    [halt] = risk.mark(1019.0, T0 + DAY + HOUR)  # 15.1 % below the 1200 peak (daily loss only 11.4 %)
    assert halt.kind == "drawdown_halt"
    assert "15" in halt.detail
    assert risk.state == HALTED
    risk.mark(2000.0, T0 + 5 * DAY)
    assert risk.state == HALTED  # a halt is final


def test_risk_state_snapshot_round_trip_keeps_everything() -> None:
    risk = state()
    risk.mark(1100.0, T0)
    risk.mark(1040.0, T0 + HOUR)
    again = RiskState(risk.limits, 1000.0, risk.snapshot(kill_switch=True))
    assert (again.state, again.peak_equity, again.day_start_equity, again.day_start_ms, again.last_equity) == (
        risk.state,
        risk.peak_equity,
        risk.day_start_equity,
        risk.day_start_ms,
        risk.last_equity,
    )
    assert risk.snapshot(kill_switch=True).kill_switch


def test_risk_state_kelly_statistics_use_the_kernel_trade_return() -> None:
    risk = state()

    def trade(pnl: str) -> ClosedTrade:
        return ClosedTrade(
            "BTCUSDT", 1, Decimal(1), 0, 1, Decimal(100), Decimal(100), Decimal(0), Decimal(pnl), "signal"
        )

    for pnl in ("10", "-5", "0", "20"):
        risk.record_trade(trade(pnl))
    assert (risk.n_wins, risk.n_losses) == (2, 2)  # a zero return counts as a loss, as in the kernel
    assert abs(risk.sum_win - 0.30) < 1e-12
    assert abs(risk.sum_loss - 0.05) < 1e-12


def test_kill_switch_file_and_endpoint_survive_restart(tmp_path) -> None:
    path = tmp_path / "KILL"
    switch = KillSwitch(path)
    assert not switch.engaged
    path.write_text("stop")
    assert switch.engaged
    assert "exists" in switch.why()
    assert switch.release() is False  # the operator's file is never deleted by a release
    assert path.read_text() == "stop"
    assert switch.engaged
    path.unlink()
    assert not switch.engaged
    switch.engage("endpoint")
    assert switch.engaged
    assert "endpoint" in switch.why()
    assert KillSwitch(path).engaged  # thrown through the endpoint, it survives a restart
    assert KillSwitch(path).release() is True  # and a restarted robot's endpoint can release it
    assert not KillSwitch(path).engaged
    assert not path.exists()


def test_kill_switch_engaged_over_an_operators_file_keeps_it_on_release(tmp_path) -> None:
    path = tmp_path / "KILL"
    path.write_text("operator: maintenance\n")
    switch = KillSwitch(path)
    switch.engage("endpoint")
    assert path.read_text() == "operator: maintenance\n"  # not overwritten
    assert switch.release() is False
    assert path.read_text() == "operator: maintenance\n"
    assert switch.engaged


def test_kill_switch_that_cannot_write_its_file_pauses_in_memory_and_says_so(tmp_path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    switch = KillSwitch(blocker / "KILL")
    with pytest.raises(KillNotPersisted, match="paused in memory only"):
        switch.engage("endpoint")
    assert switch.engaged


def test_risk_state_usage_lists_every_limit() -> None:
    risk = state()
    risk.mark(1000.0, T0)
    usage = {u.name: u for u in risk.usage(970.0, 0.05, 0.08, 0.3, 0.08)}
    assert set(usage) >= {"position size", "daily loss", "drawdown", "correlation", "leverage", "stop-loss distance"}
    assert abs(usage["daily loss"].used - 3.0) < 1e-9
    assert usage["daily loss"].limit == 5.0
    assert abs(usage["drawdown"].ratio - 0.2) < 1e-9
