"""Configuration: frozen pydantic models from a TOML file and environment variables."""

from autotrader.config.settings import KafkaSettings, Settings, StorageSettings, load_settings

__all__ = ["KafkaSettings", "Settings", "StorageSettings", "load_settings"]
