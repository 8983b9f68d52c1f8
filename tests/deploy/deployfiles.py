"""Read the deployment files (Dockerfile, compose, systemd units, env examples) the way their tools do.

Only what the deployment tests compare: no Docker or systemd is needed.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import typer.main
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile.autotrade"
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
SYSTEMD_DIR = ROOT / "deploy" / "systemd"
SYSTEMD_ENV_EXAMPLE = SYSTEMD_DIR / "autotrader.env.example"
COMPOSE_SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"
SRC = ROOT / "src" / "autotrader"

AUTOTRADER_SERVICES = ("analytics-engine", "autotrade", "dashboard")
"""Compose services that run the autotrader image; the systemd unit running the same command is in UNIT_OF."""

UNIT_OF = {
    "analytics-engine": "autotrader-signals.service",
    "autotrade": "autotrader-robot.service",
    "dashboard": "autotrader-dashboard.service",
}

_OUR_ENV = re.compile(r"""["']((?:AUTOTRADER|POSTGRES|BYBIT)_[A-Z0-9_]+)["']""")


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines (comments and blanks skipped), as docker compose and systemd read them."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=value: {line!r}"
        out[key.strip()] = value.strip()
    return out


def libpq_params(dsn: str) -> dict[str, str]:
    """``host=h port=5432 dbname=d`` -> dict (values without spaces, as in our examples)."""
    params = {}
    for part in dsn.split():
        key, sep, value = part.partition("=")
        assert sep, f"not a libpq key=value DSN: {dsn!r}"
        params[key] = value
    return params


def interpolated(value: str) -> list[tuple[str, str]]:
    """``${VAR:?msg}`` / ``${VAR:-default}`` / ``${VAR}`` in a compose value -> [(VAR, operator)]."""
    return [(m.group(1), m.group(2) or "") for m in re.finditer(r"\$\{([A-Z0-9_]+)(:[?-])?[^}]*\}", value)]


def compose_env_references() -> dict[str, str]:
    """Every variable the compose file interpolates from .env, with its operator (':?' required, ':-' default)."""
    refs: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, str):
            for name, op in interpolated(node):
                refs[name] = op if refs.get(name) != ":?" else ":?"

    walk(compose())
    return refs


# --- systemd --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    name: str
    sections: dict[str, dict[str, list[str]]]

    def get(self, section: str, key: str) -> list[str]:
        return self.sections.get(section, {}).get(key, [])

    def one(self, section: str, key: str) -> str:
        values = self.get(section, key)
        assert len(values) == 1, f"{self.name}: expected one {section}.{key}, found {values}"
        return values[0]


def read_unit(path: Path) -> Unit:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}: key outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not Key=value: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return Unit(path.name, sections)


def units() -> dict[str, Unit]:
    return {p.name: read_unit(p) for p in sorted(SYSTEMD_DIR.glob("*.service"))}


def unit_environment(unit: Unit) -> dict[str, str]:
    """Environment= lines plus the EnvironmentFile, read from its example in the repository."""
    env: dict[str, str] = {}
    for path in unit.get("Service", "EnvironmentFile"):
        assert Path(path.lstrip("-")).name == "autotrader.env", f"{unit.name}: unexpected EnvironmentFile {path}"
        env.update(read_env_file(SYSTEMD_ENV_EXAMPLE))
    for line in unit.get("Service", "Environment"):
        for item in shlex.split(line):
            key, _, value = item.partition("=")
            env[key] = value
    return env


def autotrader_argv(exec_line: str) -> list[str]:
    argv = shlex.split(exec_line)
    assert Path(argv[0]).name == "autotrader", f"ExecStart does not run autotrader: {exec_line}"
    return argv[1:]


# --- Dockerfile -----------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buffer = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        word, _, rest = buffer.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buffer = ""
    return out


def dockerfile_stage(name: str) -> list[tuple[str, str]]:
    """The instructions of the stage ``FROM ... AS name``."""
    stage: list[tuple[str, str]] | None = None
    for instruction, args in dockerfile_instructions():
        if instruction == "FROM":
            if stage is not None:
                return stage
            if args.split()[-1] == name:
                stage = []
            continue
        if stage is not None:
            stage.append((instruction, args))
    assert stage is not None, f"no stage {name!r} in {DOCKERFILE.name}"
    return stage


def dockerfile_env(stage: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, args in dockerfile_stage(stage):
        if instruction == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def dockerfile_json(instruction: str, stage: str = "runtime") -> list[str]:
    """The exec-form (JSON array) arguments of the last ``instruction`` of ``stage``."""
    found = [args for ins, args in dockerfile_stage(stage) if ins == instruction]
    assert found, f"no {instruction} in stage {stage}"
    return json.loads(found[-1])


# --- the code's side ------------------------------------------------------------------------------


def cli_root() -> Any:
    """The click command tree of ``autotrader`` (typer ships its own copy of click, so duck-typed here)."""
    from autotrader.cli import app

    root = typer.main.get_command(app)
    assert _is_group(root)
    return root


def _is_group(command: Any) -> bool:
    return isinstance(getattr(command, "commands", None), dict)


def parse_cli(argv: list[str]) -> tuple[str, Any]:
    """Parse ``autotrader ARGV`` exactly as the CLI would, without running it.

    Returns the command path and its context (``ctx.params`` holds the converted values). An unknown
    command, an unknown option, a bad value or a missing required option raises ``AssertionError``
    naming the file's command line.
    """
    command = cli_root()
    path = ["autotrader"]
    args = list(argv)
    while _is_group(command):
        assert args, f"{' '.join(path)} needs a subcommand: {argv}"
        name = args.pop(0)
        sub = command.commands.get(name)
        assert sub is not None, (
            f"'{' '.join(path)}' has no command {name!r} (has: {', '.join(sorted(command.commands))}); line: {argv}"
        )
        command, path = sub, [*path, name]
    try:
        ctx = command.make_context(" ".join(path), args)
    except Exception as e:  # click's UsageError / BadParameter (typer's vendored click)
        if not hasattr(e, "format_message"):
            raise
        raise AssertionError(f"{' '.join(path)} {' '.join(args)}: {e.format_message()}") from None
    return " ".join(path), ctx


def option_value(ctx: Any, option: str) -> Any:
    """The parsed value of ``option`` (e.g. ``--brokers``) in a context from ``parse_cli``."""
    for param in ctx.command.params:
        if option in param.opts:
            return ctx.params[param.name]
    raise AssertionError(f"{ctx.info_name} has no option {option}")


def env_vars_read_by_code() -> set[str]:
    """Names of our environment variables that appear as string literals in the source, plus click envvars."""
    names: set[str] = set()
    for path in SRC.rglob("*.py"):
        names.update(_OUR_ENV.findall(path.read_text(encoding="utf-8")))

    def walk(command: Any) -> None:
        for param in command.params:
            envvar = getattr(param, "envvar", None)
            if isinstance(envvar, str):
                names.add(envvar)
            elif envvar:
                names.update(envvar)
        if _is_group(command):
            for sub in command.commands.values():
                walk(sub)

    walk(cli_root())
    return names
