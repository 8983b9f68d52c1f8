"""Configuration: frozen pydantic models from a TOML file and environment variables."""

from autotrader.config.settings import Settings, StorageSettings, load_settings

__all__ = ["Settings", "StorageSettings", "load_settings"]
