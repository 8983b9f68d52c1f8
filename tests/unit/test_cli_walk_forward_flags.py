"""The walk-forward options ``analyze`` and ``optimize`` share are declared once and reach each as one object."""

from __future__ import annotations

from typing import Annotated

import typer
from typer.testing import CliRunner

from autotrader.cli.analyze import WalkForwardFlags, _BoolValueCommand, with_walk_forward_flags
from autotrader.validation.analysis import WalkForwardOptions

WALK_FORWARD_OPTIONS = [
    "--trials", "--is-days", "--oos-days", "--anchored", "--objective", "--min-trades", "--scheduler",
    "--optuna-storage", "--workers",
]  # fmt: skip
DEFAULT_FLAGS = WalkForwardFlags()


def _command_app(seen: dict[str, WalkForwardOptions]) -> typer.Typer:
    def command(
        before: Annotated[int, typer.Option()] = 1,
        wf: WalkForwardFlags = DEFAULT_FLAGS,
        seed: Annotated[int, typer.Option()] = 0,
    ) -> None:
        seen["options"] = wf.options(seed)

    app = typer.Typer(add_completion=False)
    app.command(cls=_BoolValueCommand)(with_walk_forward_flags(command))
    return app


def _option_names(command: object) -> list[str]:
    return [p.opts[0] for p in command.params]  # type: ignore[attr-defined]


def test_the_walk_forward_flags_stand_where_the_wf_parameter_stands() -> None:
    command = typer.main.get_command(_command_app({}))
    assert _option_names(command) == ["--before", *WALK_FORWARD_OPTIONS, "--seed"]


def test_the_command_receives_the_parsed_flags_as_walk_forward_options() -> None:
    seen: dict[str, WalkForwardOptions] = {}
    args = ["--trials", "7", "--is-days", "30", "--anchored=true", "--optuna-storage", "sqlite://", "--seed", "3"]
    result = CliRunner().invoke(_command_app(seen), args)
    assert result.exit_code == 0, result.output
    assert seen["options"] == WalkForwardOptions(trials=7, is_days=30, anchored=True, storage="sqlite://", seed=3)


def test_unset_flags_give_the_walk_forward_defaults() -> None:
    seen: dict[str, WalkForwardOptions] = {}
    assert CliRunner().invoke(_command_app(seen), []).exit_code == 0
    assert seen["options"] == WalkForwardOptions()


def test_analyze_and_optimize_both_list_every_walk_forward_flag_in_one_block() -> None:
    from autotrader.cli import app

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    for name in ("analyze", "optimize"):
        names = _option_names(commands[name])
        first = names.index("--trials")
        assert names[first : first + len(WALK_FORWARD_OPTIONS)] == WALK_FORWARD_OPTIONS
