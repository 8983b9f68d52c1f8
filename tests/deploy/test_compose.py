"""docker-compose.yml without a Docker engine: the Compose Specification schema and the stack's promises.

The schema is the Compose Specification's own ``compose-spec.json`` (Apache-2.0, licence beside it in
tests/data/), vendored so the test needs no network.
"""

from __future__ import annotations

import copy
import json
import re

import jsonschema
import pytest

from tests.deploy.deployfiles import (
    AUTOTRADER_SERVICES,
    COMPOSE_SCHEMA,
    ENV_EXAMPLE,
    compose,
    compose_env_references,
    libpq_params,
    read_env_file,
    service,
)

SERVICES = {"postgres", "kafka", "analytics-engine", "autotrade", "dashboard"}


def _schema_errors(document: dict) -> list[str]:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_validates_against_compose_spec_schema():
    assert _schema_errors(compose()) == []


@pytest.mark.parametrize(
    ("where", "key", "value"),
    [
        ("autotrade", "restart_policy", "always"),  # not a service key
        ("autotrade", "depends_on", {"kafka": {"condition": "service_up"}}),  # unknown condition
        ("dashboard", "ports", "8050"),  # a string where a list belongs
    ],
)
def test_compose_schema_rejects_a_broken_service(where, key, value):
    document = copy.deepcopy(compose())
    document["services"][where][key] = value
    assert _schema_errors(document), f"the schema accepted services.{where}.{key} = {value!r}"


def test_compose_defines_the_five_services():
    assert set(compose()["services"]) == SERVICES


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_compose_service_has_healthcheck_and_restart_policy(name):
    svc = service(name)
    test = svc.get("healthcheck", {}).get("test")
    assert isinstance(test, list), f"{name}: no exec-form health check"
    assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1
    restart = svc.get("restart")
    # The robot must stop after a few failed starts instead of thrashing: Docker honours a retry count
    # only with on-failure (it refuses "unless-stopped" + deploy.restart_policy.max_attempts).
    if name == "autotrade":
        match = re.fullmatch(r"on-failure:(\d+)", str(restart))
        assert match and 1 <= int(match.group(1)) <= 10, f"autotrade: restart {restart!r} is not bounded"
    else:
        assert restart == "unless-stopped", f"{name}: restart {restart!r}"
    policy = svc.get("deploy", {}).get("restart_policy", {})
    assert not ("max_attempts" in policy and restart == "unless-stopped"), f"{name}: Docker refuses this pair"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_compose_depends_on_waits_for_healthy_services(name):
    for dependency, spec in service(name).get("depends_on", {}).items():
        assert dependency in SERVICES, f"{name} depends on unknown service {dependency}"
        assert spec == {"condition": "service_healthy"}, f"{name} -> {dependency}: {spec}"
        assert "healthcheck" in service(dependency)


def test_compose_services_start_after_their_backends():
    def needs(name: str) -> set[str]:
        return set(service(name).get("depends_on", {}))

    assert {"postgres", "kafka"} <= needs("analytics-engine")
    assert {"postgres", "kafka", "analytics-engine"} <= needs("autotrade")
    assert "postgres" in needs("dashboard")


def test_compose_named_volumes_are_declared_used_and_hold_state():
    declared = set(compose().get("volumes", {}))
    used: dict[str, str] = {}
    for name, svc in compose()["services"].items():
        for mount in svc.get("volumes", []):
            source, _, target = mount.partition(":")
            assert not source.startswith((".", "/")), f"{name}: bind mount {mount}; use a named volume"
            assert source in declared, f"{name}: volume {source} is not declared"
            used[source] = f"{name}:{target.split(':')[0]}"
    assert set(used) == declared, f"declared but unused: {declared - set(used)}"
    targets = set(used.values())
    assert "postgres:/var/lib/postgresql/data" in targets
    assert "kafka:/var/lib/kafka/data" in targets
    assert "autotrade:/var/lib/autotrader" in targets
    kafka_env = service("kafka")["environment"]
    assert kafka_env["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"


def test_compose_kafka_is_single_node_kraft():
    env = service("kafka")["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node = str(env["KAFKA_NODE_ID"])
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{node}@kafka:9093"
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"):
        assert env[key] == 1, key


def test_compose_publishes_ports_on_loopback_only():
    for name, svc in compose()["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port} is published on every interface"


def test_env_example_has_libpq_dsn_matching_the_postgres_service():
    example = read_env_file(ENV_EXAMPLE)
    for key in ("POSTGRES_DSN", "BYBIT_API_KEY", "BYBIT_API_SECRET"):
        assert key in example, key
    dsn = libpq_params(example["POSTGRES_DSN"])
    pg = service("postgres")["environment"]
    assert dsn["host"] == "postgres"
    assert dsn["port"] == "5432"
    assert dsn["dbname"] == pg["POSTGRES_DB"]
    assert dsn["user"] == pg["POSTGRES_USER"]
    assert dsn["password"] == example["POSTGRES_PASSWORD"], "POSTGRES_DSN and POSTGRES_PASSWORD must agree"
    assert "--port=5432" in service("postgres")["healthcheck"]["test"]


def test_env_example_covers_every_variable_compose_interpolates():
    example = set(read_env_file(ENV_EXAMPLE))
    refs = compose_env_references()
    required = {name for name, op in refs.items() if op != ":-"}
    assert required <= example, f"compose requires {required - example}, missing in .env.example"
    assert example <= set(refs), f".env.example sets {example - set(refs)}, which compose never uses"


def test_compose_secrets_come_from_env_file_not_the_compose_file():
    for name in (*AUTOTRADER_SERVICES, "postgres"):
        for key, value in service(name).get("environment", {}).items():
            if any(word in key for word in ("PASSWORD", "SECRET", "TOKEN", "KEY", "DSN")):
                assert str(value).startswith("${"), f"{name}: {key} is written in the compose file"
