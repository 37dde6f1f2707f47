"""All of smolcrew's settings, in one typed object.

Sources, highest priority first: keyword overrides (`load_settings(**overrides)`), environment variables
(`SMOLCREW_*`, nested with `__`: `SMOLCREW_LLM__BACKEND=scripted`), a TOML file (`--config PATH`,
`SMOLCREW_CONFIG`, or `./smolcrew.toml`), then the defaults below.
"""

from __future__ import annotations

import os
import re
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from smolcrew.errors import ConfigError
from smolcrew.sections import (
    DEFAULT_UPLOAD_TYPES,
    AgentSettings,
    Backend,
    ClusterSettings,
    FilesSettings,
    LLMSettings,
    MemorySettings,
    PoolSettings,
    RoutingSettings,
    SandboxSettings,
    ServerSettings,
    ServiceSettings,
    ValidationSettings,
)

__all__ = [
    "DEFAULT_UPLOAD_TYPES",
    "AgentSettings",
    "Backend",
    "ClusterSettings",
    "FilesSettings",
    "LLMSettings",
    "MemorySettings",
    "PoolSettings",
    "RoutingSettings",
    "SandboxSettings",
    "ServerSettings",
    "ServiceSettings",
    "Settings",
    "ValidationSettings",
    "load_settings",
]

Device = Literal["auto", "cpu", "cuda", "mps"]


def _default_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "smolcrew"


_toml_path: ContextVar[Path | None] = ContextVar("smolcrew_toml_path", default=None)


class Settings(BaseSettings):
    """smolcrew's settings. Build with `load_settings()`, which turns invalid values into `ConfigError`."""

    model_config = SettingsConfigDict(
        env_prefix="SMOLCREW_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
    )

    home: Path = Field(default_factory=_default_home)
    """Data and cache folder: runs, joined model files, embedding caches."""
    device: Device = "auto"
    """Where pipelines run: auto picks cuda, then mps, then cpu."""
    llm: LLMSettings = Field(default_factory=LLMSettings)
    agents: AgentSettings = Field(default_factory=AgentSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    pool: PoolSettings = Field(default_factory=PoolSettings)
    files: FilesSettings = Field(default_factory=FilesSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    services: ServiceSettings = Field(default_factory=ServiceSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    models: dict[str, str] = Field(default_factory=dict)
    """Per-role model overrides for pipelines, e.g. `sentiment = "distilbert/..."` (see `smolcrew models`)."""

    @field_validator("home")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _toml_path.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


def _find_config(path: str | Path | None) -> Path | None:
    path = path if path is not None else os.environ.get("SMOLCREW_CONFIG") or None
    if path is not None:
        found = Path(path).expanduser()
        if not found.is_file():
            raise ConfigError(f"config file {found} does not exist; check the --config path", field="config")
        return found
    local = Path("smolcrew.toml")
    return local if local.is_file() else None


def _describe(error: Any) -> str:
    field = ".".join(str(part) for part in error["loc"])
    env = "SMOLCREW_" + "__".join(str(part).upper() for part in error["loc"])
    given = error.get("input")
    hint = f"set {env} or `{field}` in smolcrew.toml"
    if error["type"] == "extra_forbidden":
        return f"unknown setting `{field}`: remove it or fix its spelling (see README, Configuration)"
    return f"`{field}`: {error['msg']} (got {given!r}); {hint}"


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Read settings from overrides, `SMOLCREW_*` variables, a TOML file and defaults.

    Raises:
        ConfigError: a value is invalid or the file cannot be read; the message names the field and the fix.
    """
    toml_file = _find_config(path)
    if toml_file is not None:
        try:
            tomllib.loads(toml_file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{toml_file} is not valid TOML: {exc}", field="config") from exc
    token = _toml_path.set(toml_file)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        lines = "\n  ".join(_describe(error) for error in errors)
        source = f" (file: {toml_file})" if toml_file else ""
        raise ConfigError(
            f"invalid configuration{source}:\n  {lines}",
            field=".".join(str(part) for part in first["loc"]),
        ) from exc
    except SettingsError as exc:  # an env var of a list or table section that is not JSON
        named = re.search(r'field "(\w+)"', str(exc))  # pydantic-settings names the top-level field only
        section = named[1] if named else None
        variable = f"SMOLCREW_{section.upper()}" if section else "SMOLCREW_*"
        raise ConfigError(
            f"invalid configuration: {variable} or one of its {variable}__* variables is not valid JSON "
            f"({exc.__cause__ or exc}); a list or table in an environment variable is written in JSON, "
            """e.g. SMOLCREW_FILES__ROOTS='["/data/in"]'""",
            field=section or "environment",
        ) from exc
    finally:
        _toml_path.reset(token)
