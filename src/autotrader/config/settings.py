"""Settings: defaults < TOML file < environment variables. Unknown keys are an error naming the key.

Environment variables:
  ``AUTOTRADER_HOME``   where the embedded store, caches and the default config file live
                        (default ``~/.autotrader``);
  ``AUTOTRADER_CONFIG`` path of the TOML file (default ``$AUTOTRADER_HOME/config.toml`` if it exists);
  ``AUTOTRADER_STORE``  ``embedded`` or ``postgres``;
  ``POSTGRES_DSN``      PostgreSQL connection string; setting it selects the postgres store unless
                        ``AUTOTRADER_STORE`` says otherwise;
  ``BYBIT_API_KEY`` / ``BYBIT_API_SECRET``  exchange keys (never taken from flags, never logged);
  ``AUTOTRADER_KAFKA_SECURITY_PROTOCOL``  ``plaintext``, ``ssl``, ``sasl_plaintext`` or ``sasl_ssl``;
  ``AUTOTRADER_KAFKA_SASL_MECHANISM``     ``PLAIN``, ``SCRAM-SHA-256`` or ``SCRAM-SHA-512``;
  ``AUTOTRADER_KAFKA_SASL_USERNAME`` / ``AUTOTRADER_KAFKA_SASL_PASSWORD``  SASL credentials (never logged);
  ``AUTOTRADER_KAFKA_SSL_CA_LOCATION``    CA certificate file (PEM) that signed the brokers' certificates.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator, model_validator

from autotrader.domain.errors import ConfigError


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StorageSettings(_Frozen):
    """Which market-data store to use and where."""

    backend: Literal["embedded", "postgres"] = "embedded"
    postgres_dsn: SecretStr | None = None
    postgres_schema: str = "public"
    seed_bundled: bool = True

    @model_validator(mode="after")
    def _dsn_for_postgres(self) -> StorageSettings:
        if self.backend == "postgres" and self.postgres_dsn is None:
            raise ValueError("backend 'postgres' needs postgres_dsn (or the POSTGRES_DSN environment variable)")
        return self


class ExchangeSettings(_Frozen):
    """Exchange credentials and endpoint (keys from the environment only)."""

    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    base_url: str | None = None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long, or not encodable for the file system
        return False


class KafkaSettings(_Frozen):
    """How to reach a secured Kafka cluster (TLS and/or SASL); the default is plaintext without auth."""

    security_protocol: Literal["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"] = "plaintext"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = None

    @field_validator("security_protocol", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSettings:
        sasl = self.security_protocol.startswith("sasl_")
        if sasl and (self.sasl_mechanism is None or not self.sasl_username or self.sasl_password is None):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs sasl_mechanism, sasl_username and sasl_password"
            )
        if not sasl and (self.sasl_mechanism or self.sasl_username or self.sasl_password):
            raise ValueError("SASL settings need security_protocol sasl_plaintext or sasl_ssl")
        if self.ssl_ca_location is not None:
            if not self.security_protocol.endswith("ssl"):
                raise ValueError("ssl_ca_location needs security_protocol ssl or sasl_ssl")
            if not _is_file(self.ssl_ca_location):
                raise ValueError(f"ssl_ca_location {str(self.ssl_ca_location)[:200]!r} is not a file")
        return self

    def client_config(self) -> dict[str, str]:
        """The librdkafka settings (``security.protocol``, ``sasl.*``, ``ssl.ca.location``); holds the password."""
        out = {"security.protocol": self.security_protocol}
        if self.sasl_mechanism is not None:
            out["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username is not None:
            out["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            out["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location is not None:
            out["ssl.ca.location"] = str(self.ssl_ca_location)
        return out


class Settings(_Frozen):
    """All of AutoTrader's configuration."""

    home: Path
    storage: StorageSettings = StorageSettings()
    exchange: ExchangeSettings = ExchangeSettings()
    kafka: KafkaSettings = KafkaSettings()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    storage: dict[str, Any] = {}
    exchange: dict[str, Any] = {}
    if dsn := env.get("POSTGRES_DSN"):
        storage["postgres_dsn"] = dsn
        storage["backend"] = "postgres"
    if backend := env.get("AUTOTRADER_STORE"):
        storage["backend"] = backend
    if key := env.get("BYBIT_API_KEY"):
        exchange["api_key"] = key
    if secret := env.get("BYBIT_API_SECRET"):
        exchange["api_secret"] = secret
    if url := env.get("BYBIT_BASE_URL"):
        exchange["base_url"] = url
    out: dict[str, Any] = {}
    kafka = {
        name: env[f"AUTOTRADER_KAFKA_{name.upper()}"]
        for name in KafkaSettings.model_fields
        if env.get(f"AUTOTRADER_KAFKA_{name.upper()}")
    }
    if kafka:
        out["kafka"] = kafka
    if storage:
        out["storage"] = storage
    if exchange:
        out["exchange"] = exchange
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in over.items():
        merged[k] = _merge(merged[k], v) if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
    return merged


def _describe(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown setting '{where}'"
    return f"{source}: setting '{where}': {first['msg']}"


def load_settings(config_file: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Build ``Settings`` from defaults, the TOML file and the environment; ``ConfigError`` on bad input."""
    env = os.environ if env is None else env
    home = Path(env.get("AUTOTRADER_HOME") or Path.home() / ".autotrader").expanduser()
    path = config_file or (Path(env["AUTOTRADER_CONFIG"]) if env.get("AUTOTRADER_CONFIG") else None)
    if path is None and (home / "config.toml").is_file():
        path = home / "config.toml"
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"config file {path} is not UTF-8 text (byte {e.start})") from None
        except OSError as e:
            raise ConfigError(f"config file {path} cannot be read: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    data = _merge(data, _env_overrides(env))
    data.setdefault("home", str(home))
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_describe(e, str(path) if path else "environment")) from None
