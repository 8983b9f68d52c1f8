"""The deployment files and the code agree: commands, options, ports and environment variables.

Every ``autotrader`` command line in docker-compose.yml, the systemd units and the Dockerfile is parsed by
the CLI's own click tree (unknown command or option, bad value or missing required option fails); the
ports each line names match the health checks, published ports and EXPOSE; and the environment each
service gets matches what the code reads.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.deploy.deployfiles import (
    AUTOTRADER_SERVICES,
    ROOT,
    SYSTEMD_DIR,
    UNIT_OF,
    autotrader_argv,
    compose,
    dockerfile_env,
    dockerfile_instructions,
    dockerfile_json,
    env_vars_read_by_code,
    option_value,
    parse_cli,
    service,
    unit_environment,
    units,
)

# What the code reads for each service (a variable the code reads that is neither here nor in OPTIONAL
# fails test_every_variable_the_code_reads_is_classified: decide where it belongs).
SERVICE_ENV = {
    "analytics-engine": {"AUTOTRADER_HOME", "POSTGRES_DSN", "BYBIT_BASE_URL"},
    "autotrade": {"AUTOTRADER_HOME", "POSTGRES_DSN", "BYBIT_API_KEY", "BYBIT_API_SECRET", "BYBIT_BASE_URL"},
    "dashboard": {"AUTOTRADER_HOME", "POSTGRES_DSN", "AUTOTRADER_API_TOKEN"},
}
OPTIONAL = {
    "AUTOTRADER_CONFIG": "settings come from the environment; a TOML file is optional",
    "AUTOTRADER_STORE": "POSTGRES_DSN selects the PostgreSQL store by itself",
    "AUTOTRADER_BROKERS": "the command line gives --brokers",
    "AUTOTRADER_TOPIC": "the command line gives --topic",
    "AUTOTRADER_SIGNALS": "the command line gives --signals",
    "AUTOTRADER_METRICS_PORT": "the command line gives --metrics-port",
}
BROKER_UNIT = "autotrader-broker.service"


def _compose_argv(name: str) -> list[str]:
    command = service(name)["command"]
    assert isinstance(command, list), f"{name}: give the command in exec form (a list)"
    return [str(a) for a in command]


def _unit_argv(unit_name: str) -> list[str]:
    return autotrader_argv(units()[unit_name].one("Service", "ExecStart"))


def _all_command_lines() -> list[tuple[str, list[str]]]:
    lines = [(f"compose:{name}", _compose_argv(name)) for name in AUTOTRADER_SERVICES]
    lines.append(("Dockerfile CMD", dockerfile_json("CMD")))
    for unit_name, unit in units().items():
        for key in ("ExecStart", "ExecStop"):
            lines.extend((f"{unit_name}:{key}", autotrader_argv(v)) for v in unit.get("Service", key))
    return lines


@pytest.mark.parametrize(("where", "argv"), _all_command_lines(), ids=[w for w, _ in _all_command_lines()])
def test_deploy_command_line_parses_with_the_cli(where, argv):
    parse_cli(argv)


def test_parse_cli_rejects_unknown_command_option_and_value():
    with pytest.raises(AssertionError, match="no command 'serve-forever'"):
        parse_cli(["signals", "serve-forever"])
    with pytest.raises(AssertionError, match="--no-such-option"):
        parse_cli(["dashboard", "--no-such-option", "1"])
    with pytest.raises(AssertionError, match="--port"):
        parse_cli(["dashboard", "--port", "99999"])


@pytest.mark.parametrize("name", AUTOTRADER_SERVICES)
def test_systemd_unit_runs_the_compose_command(name):
    # Same command, with the compose network's host names replaced by this host's loopback.
    in_compose = [re.sub(r"kafka:(?=\d)", "127.0.0.1:", a) for a in _compose_argv(name)]
    assert _unit_argv(UNIT_OF[name]) == in_compose


def test_dockerfile_default_command_is_the_compose_robot():
    assert dockerfile_json("CMD") == _compose_argv("autotrade")


def _health_url(name: str) -> str:
    test = service(name)["healthcheck"]["test"]
    return next(a for a in test if "://" in a)


def test_ports_dashboard_command_health_check_published_and_exposed_agree():
    _, ctx = parse_cli(_compose_argv("dashboard"))
    port = option_value(ctx, "--port")
    assert option_value(ctx, "--host") == "0.0.0.0", "inside its container the dashboard must listen beyond loopback"
    assert urlsplit(_health_url("dashboard")).port == port
    assert [str(p).rsplit(":", 1)[-1] for p in service("dashboard")["ports"]] == [str(port)]
    assert str(port) in _exposed()
    _, unit_ctx = parse_cli(_unit_argv(UNIT_OF["dashboard"]))
    assert option_value(unit_ctx, "--port") == port


def test_ports_robot_metrics_port_is_its_health_check():
    _, ctx = parse_cli(_compose_argv("autotrade"))
    port = option_value(ctx, "--metrics-port")
    health = urlsplit(_health_url("autotrade"))
    assert (health.hostname, health.port, health.path) == ("127.0.0.1", port, "/health")
    assert str(port) in _exposed()
    docker_default = dockerfile_env("runtime").get("AUTOTRADER_HEALTH_URL", "http://127.0.0.1:9108/health")
    assert urlsplit(docker_default).port == port, "the image's default health probe must hit the robot's port"


def test_ports_kafka_listener_matches_engine_and_robot():
    env = service("kafka")["environment"]
    advertised = urlsplit(env["KAFKA_ADVERTISED_LISTENERS"].split(",")[0])
    bootstrap = f"{advertised.hostname}:{advertised.port}"
    assert advertised.hostname == "kafka"
    assert f"PLAINTEXT://:{advertised.port}" in env["KAFKA_LISTENERS"]
    kafka_check = service("kafka")["healthcheck"]["test"]
    assert f"localhost:{advertised.port}" in kafka_check
    _, engine = parse_cli(_compose_argv("analytics-engine"))
    _, robot = parse_cli(_compose_argv("autotrade"))
    assert option_value(engine, "--brokers") == bootstrap
    topic = option_value(engine, "--topic")
    assert option_value(robot, "--signals") == f"kafka://{bootstrap}/{topic}"
    assert _health_url("analytics-engine") == f"tcp://{bootstrap}"


def test_ports_systemd_broker_serves_what_the_engine_and_robot_use():
    _, engine = parse_cli(_unit_argv(UNIT_OF["analytics-engine"]))
    _, robot = parse_cli(_unit_argv(UNIT_OF["autotrade"]))
    brokers, topic = option_value(engine, "--brokers"), option_value(engine, "--topic")
    assert option_value(robot, "--signals") == f"kafka://{brokers}/{topic}"
    _, broker = parse_cli(_unit_argv(BROKER_UNIT))
    host, port = brokers.rsplit(":", 1)
    assert host == "127.0.0.1"
    if any("--port" in p.opts for p in broker.command.params):  # `broker start` listens where they look
        assert str(option_value(broker, "--port")) == port
    if any("--topic" in p.opts for p in broker.command.params):  # ... and creates the topic they use
        assert option_value(broker, "--topic") == topic


def _exposed() -> set[str]:
    return {p.split("/")[0] for ins, args in dockerfile_instructions() if ins == "EXPOSE" for p in args.split()}


def test_every_variable_the_code_reads_is_classified():
    read = env_vars_read_by_code()
    classified = set().union(*SERVICE_ENV.values()) | set(OPTIONAL)
    assert read <= classified, f"the code reads {sorted(read - classified)}: add them to SERVICE_ENV or OPTIONAL"


@pytest.mark.parametrize("name", AUTOTRADER_SERVICES)
def test_compose_service_sets_every_variable_the_code_reads_for_it(name):
    env = service(name)["environment"]
    missing = SERVICE_ENV[name] - set(env)
    assert not missing, f"{name}: the code reads {sorted(missing)}, which compose does not set"


@pytest.mark.parametrize("name", AUTOTRADER_SERVICES)
def test_compose_service_sets_only_variables_the_code_reads(name):
    ours = {k for k in service(name)["environment"] if k.startswith(("AUTOTRADER_", "POSTGRES_", "BYBIT_"))}
    unread = ours - env_vars_read_by_code()
    assert not unread, f"{name}: compose sets {sorted(unread)}, which no code reads"


@pytest.mark.parametrize("name", AUTOTRADER_SERVICES)
def test_systemd_unit_sets_every_variable_the_code_reads_for_it(name):
    env = unit_environment(units()[UNIT_OF[name]])
    missing = SERVICE_ENV[name] - set(env)
    assert not missing, f"{UNIT_OF[name]}: the code reads {sorted(missing)}, which the unit does not set"
    unread = {k for k in env if k.startswith(("AUTOTRADER_", "POSTGRES_", "BYBIT_"))} - env_vars_read_by_code()
    assert not unread, f"{UNIT_OF[name]}: sets {sorted(unread)}, which no code reads"


def test_autotrader_home_is_the_image_home_and_the_state_volume():
    home = dockerfile_env("runtime")["AUTOTRADER_HOME"]
    for name in AUTOTRADER_SERVICES:
        svc = service(name)
        assert svc["environment"]["AUTOTRADER_HOME"] == home, name
        for mount in svc.get("volumes", []):
            assert mount.split(":")[1] == home, f"{name}: {mount}"
    for unit in units().values():
        assert f"AUTOTRADER_HOME={home}" in unit.get("Service", "Environment"), unit.name
        assert unit.one("Service", "WorkingDirectory") == home, unit.name


def test_compose_services_use_the_image_built_from_the_dockerfile():
    for name in AUTOTRADER_SERVICES:
        build = service(name)["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).resolve() == (ROOT / "Dockerfile.autotrade")


@pytest.mark.parametrize("unit_name", sorted(units()))
def test_systemd_unit_restarts_on_failure_within_a_start_limit(unit_name):
    unit = units()[unit_name]
    assert unit.one("Service", "Restart") == "on-failure"
    burst = int(unit.one("Unit", "StartLimitBurst"))
    interval_s = int(unit.one("Unit", "StartLimitIntervalSec"))
    restart_s = int(unit.one("Service", "RestartSec"))
    assert 1 < burst <= 10
    # The limit must be reachable: `burst` restarts, each RestartSec apart, fit inside the interval.
    assert burst * restart_s < interval_s, f"{unit_name}: a crash loop never hits the start limit"
    assert unit.one("Service", "User") != "root"


def test_systemd_units_cover_every_autotrader_service_and_the_broker():
    assert set(units()) == {*UNIT_OF.values(), BROKER_UNIT}


def test_systemd_analyze_verify_accepts_the_units(tmp_path):
    """systemd's own parser: unknown keys, bad values and bad dependencies are reported.

    The units name the installed path /opt/autotrader/venv/bin/autotrader; the copies verified here run
    this checkout's ``autotrader`` instead, so the check does not depend on an installation.
    """
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is missing (Debian package systemd)"
    executable = Path(sys.executable).parent / "autotrader"
    assert executable.is_file(), executable
    for path in SYSTEMD_DIR.glob("*.service"):
        text = path.read_text(encoding="utf-8").replace("/opt/autotrader/venv/bin/autotrader", str(executable))
        (tmp_path / path.name).write_text(text, encoding="utf-8")
    result = subprocess.run(
        [tool, "verify", "--man=no", *sorted(str(p) for p in tmp_path.glob("*.service"))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    ours = [ln for ln in (result.stdout + result.stderr).splitlines() if "autotrader-" in ln]
    assert result.returncode == 0 and not ours, result.stdout + result.stderr


def test_readme_production_section_names_the_files_services_and_variables():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Production deployment" in readme
    section = readme.split("## Production deployment", 1)[1].split("\n## ", 1)[0]
    for name in compose()["services"]:
        assert f"`{name}`" in section, name
    for unit_name in units():
        assert unit_name in section, unit_name
    for variable in {*SERVICE_ENV["autotrade"], *SERVICE_ENV["dashboard"], "POSTGRES_PASSWORD"}:
        assert variable in section, variable
    for word in ("broker start", "broker stop", "broker status", "Dockerfile.autotrade", ".env.example"):
        assert word in section, word
