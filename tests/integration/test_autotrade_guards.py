"""``autotrade``'s guards at start-up: demo mode's allow-list of hosts and a taken control port (issue 11, 3 and 4)."""

from __future__ import annotations

import socket

import pytest
import typer
from robot_harness import new_account, sim_server
from typer.testing import CliRunner

from autotrader.cli.autotrade import _exchange_config, demo_url_allowed, register
from autotrader.domain.errors import ConfigError

KEYS = ("demo-key-123456", "demo-secret-123456")


def app() -> typer.Typer:
    a = typer.Typer()
    register(a)
    a.command("noop")(lambda: None)
    return a


@pytest.mark.parametrize(
    "url",
    [
        "https://api.bybit.com.",  # the trailing dot names the same host
        "https://api.bybit.com",
        "https://api.bytick.com",
        "https://api.bybit.nl",
        "https://api2.bybit.com",
        "https://API.BYBIT.COM",
        "https://api-demo.bybit.com.",
        "https://api-demo.bybit.com.evil.example",
        "https://evil.example",
        "http://api-demo.bybit.com",  # demo trading, but not over https
        "http://127.0.0.1@api.bybit.com",
        "http://localhost.:8000",
        "http://127.0.0.1.nip.io:8000",
        "ftp://127.0.0.1",
        "https://api-testnet.bybit.com/v5",
    ],
)
def test_autotrade_demo_refuses_every_host_outside_the_allow_list(url) -> None:
    assert not demo_url_allowed(url)
    with pytest.raises(ConfigError) as caught:
        _exchange_config("demo", url, *KEYS)
    assert "demo mode never trades a real account" in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://api-demo.bybit.com",
        "https://api-testnet.bybit.com",
        "http://127.0.0.1:8765",
        "http://127.0.0.2:8765/",
        "http://localhost:8765",
        "http://[::1]:8765",
    ],
)
def test_autotrade_demo_accepts_bybit_demo_testnet_and_loopback(url) -> None:
    assert demo_url_allowed(url)
    config = _exchange_config("demo", url, *KEYS)
    assert config.rest_url == url.rstrip("/")


def test_autotrade_demo_cli_refuses_a_mainnet_host_with_a_trailing_dot_in_one_line() -> None:
    env = {"BYBIT_API_KEY": KEYS[0], "BYBIT_API_SECRET": KEYS[1]}
    result = CliRunner().invoke(
        app(),
        ["autotrade", "--mode", "demo", "--strategy", "sma_cross", "--exchange-url", "https://api.bybit.com."],
        env=env,
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
    assert "'https://api.bybit.com.' is not Bybit demo trading" in str(result.exception)


def test_autotrade_second_robot_on_a_taken_metrics_port_says_so_in_one_line(tmp_path) -> None:
    with sim_server() as sim, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        key, secret = new_account(sim)
        env = {"BYBIT_API_KEY": key, "BYBIT_API_SECRET": secret, "AUTOTRADER_HOME": str(tmp_path / "home")}
        result = CliRunner().invoke(
            app(),
            [
                "autotrade",
                "--mode",
                "demo",
                "--strategy",
                "sma_cross",
                "--exchange-url",
                sim.url,
                "--timeframe",
                "1m",
                "--db",
                f"sqlite:///{tmp_path / 's.db'}",
                "--metrics-port",
                str(port),
            ],
            env=env,
        )
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError), result.exception
    message = str(result.exception)
    assert "\n" not in message
    assert f"--metrics-port {port}" in message
    assert "is in use" in message
