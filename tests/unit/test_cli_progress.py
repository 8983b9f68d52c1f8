"""Progress on long CLI work: a bar on a terminal, throttled plain lines when the output is piped."""

from __future__ import annotations

import io

from rich.console import Console

from autotrader.cli.progress import PipedProgress, progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_piped_progress_prints_a_line_every_few_seconds_and_the_last_one() -> None:
    out = io.StringIO()
    clock = FakeClock()
    piped = PipedProgress(Console(file=out, width=200), every_s=5.0, clock=clock)
    for done in range(1, 11):
        clock.now = done * 1.0  # one step a second
        piped.advance(done, 10, "stress")
    lines = out.getvalue().splitlines()
    assert lines == [
        "progress: stress 5/10 (50%), elapsed 5 s, ETA 5 s",
        "progress: stress 10/10 (100%), elapsed 10 s",
    ]


def test_piped_progress_of_quick_work_that_fails_prints_nothing() -> None:
    out = io.StringIO()
    clock = FakeClock()
    piped = PipedProgress(Console(file=out, width=200), every_s=5.0, clock=clock)
    clock.now = 0.5
    piped.advance(0, 3, "reading")
    assert out.getvalue() == ""  # an error that follows stays the only line


def test_progress_when_piped_writes_lines_and_quiet_writes_nothing() -> None:
    out = io.StringIO()
    with progress("backtest", console=Console(file=out, width=200)) as advance:
        advance(3, 3, "backtest done")
    assert out.getvalue().splitlines() == [
        "progress: backtest done 3/3 (100%), elapsed 0 s",
    ]
    quiet = io.StringIO()
    with progress("backtest", quiet=True, console=Console(file=quiet, width=200)) as advance:
        advance(3, 3, "backtest done")
    assert quiet.getvalue() == ""


def test_progress_on_a_terminal_draws_a_bar_with_percentage() -> None:
    out = io.StringIO()
    terminal = Console(file=out, width=120, force_terminal=True, color_system=None)
    with progress("stress", console=terminal) as advance:
        advance(5, 10, "stress: scenario 5")
    drawn = out.getvalue()
    assert "stress: scenario 5" in drawn
    assert "5/10" in drawn
    assert "50%" in drawn
    assert "progress:" not in drawn
