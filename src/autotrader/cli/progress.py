"""Progress of long CLI work: a bar with percentage and ETA on a terminal, a line every few seconds when piped.

The core reports progress through plain callbacks ``advance(done, total, what)``; this module is the
only place that renders it. On a terminal it draws a rich progress bar (description, bar, done/total,
percentage, elapsed, ETA) that disappears when the work ends. When the output is piped (a log file,
CI, ``| tee``) a rich bar would print nothing, so one plain line is written at most every
``PIPED_EVERY_S`` seconds (the first after that long: quick work prints only its last line, and work
that fails prints none, so an error stays one line) and once at the end, e.g.::

    progress: training ml models 12/61 (20%), elapsed 9 s, ETA 36 s

``--quiet`` silences both.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

PIPED_EVERY_S = 5.0
Advance = Callable[[int, int, str], None]


class PipedProgress:
    """Plain progress lines for a non-terminal output: throttled, always the last one."""

    def __init__(self, console: Console, every_s: float = PIPED_EVERY_S, clock: Callable[[], float] = time.monotonic):
        self.console = console
        self.every_s = every_s
        self.clock = clock
        self.started = clock()
        self.last_printed = self.started  # quick work prints only its last line; a failure prints none
        self.last: tuple[int, int, str] | None = None

    def advance(self, done: int, total: int, what: str) -> None:
        """Record progress; print a line if ``every_s`` passed since the last one or the work is complete."""
        self.last = (done, total, what)
        now = self.clock()
        if now - self.last_printed >= self.every_s or (total > 0 and done >= total):
            self._print(now)

    def _print(self, now: float) -> None:
        assert self.last is not None
        done, total, what = self.last
        elapsed = now - self.started
        if total > 0:
            eta = f", ETA {elapsed / done * (total - done):.0f} s" if 0 < done < total else ""
            figures = f"{done:,}/{total:,} ({100 * done / total:.0f}%), elapsed {elapsed:.0f} s{eta}"
        elif done == 0:
            figures = "started"
        else:
            figures = f"{done:,} done, elapsed {elapsed:.0f} s"
        self.console.print(f"progress: {what} {figures}", soft_wrap=True, highlight=False)
        self.last_printed = now


@contextmanager
def progress(
    description: str, *, quiet: bool = False, console: Console | None = None, every_s: float = PIPED_EVERY_S
) -> Iterator[Advance]:
    """Show progress of one piece of long work on stderr; yields ``advance(done, total, what)``.

    ``total`` may be 0 while unknown. ``what`` replaces the description (e.g. the current step).
    Progress goes to stderr (``console`` overrides it), so a piped report on stdout stays clean.
    ``every_s``: the least time between two piped lines (0: a line per step). The bar redraws on
    each step and runs no refresh thread, so a process pool may fork while it is shown.
    """
    if console is None:
        from rich.console import Console

        console = Console(stderr=True)
    if quiet:
        yield lambda done, total, what: None
        return
    if not console.is_terminal:
        yield PipedProgress(console, every_s=every_s).advance
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True, auto_refresh=False) as bar:
        task = bar.add_task(description, total=None)
        bar.refresh()

        def advance(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total or None, description=what or description)
            bar.refresh()

        yield advance
