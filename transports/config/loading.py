"""Reading the settings: defaults < TOML file < LOCKSTORE_* environment < command line, each source's values
type-checked (msgspec) and rule-checked (transports/config/rules.py) with the source named in the error.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from transports.config import rules
from transports.config.settings import ENV_PREFIX, LIST_FIELDS, Settings


class SettingsError(Exception):
    """A setting has a wrong name or value; the message says which and where."""


def _split_lists(values: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(values)
    for name in LIST_FIELDS & result.keys():
        if isinstance(result[name], str):
            result[name] = [part.strip() for part in result[name].split(",") if part.strip()]
    return result


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    names = set(Settings.__struct_fields__)
    found: dict[str, Any] = {}
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX) :].lower()
            if name in names:
                found[name] = value
    return found


def _from_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except OSError as error:
        raise SettingsError(f"cannot read config file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"config file {path} is not valid TOML: {error}") from None
    return {key.replace("-", "_"): value for key, value in data.items()}


def load_settings(
    cli: Mapping[str, Any], environ: Mapping[str, str], config_file: Path | None = None
) -> Settings:
    """Merge the sources (CLI > env > file > defaults); check every value's type and rule
    (transports/config/rules.py), naming the source of a bad value, then the combinations."""
    merged: dict[str, Any] = {}
    for source_name, source in (
        ("config file", _from_file(config_file) if config_file else {}),
        ("environment", _from_env(environ)),
        ("command line", {k: v for k, v in cli.items() if v is not None}),
    ):
        values = _split_lists(source)
        try:
            given = msgspec.convert(values, Settings, strict=False)
        except msgspec.ValidationError as error:
            raise SettingsError(f"invalid setting in the {source_name}: {error}") from None
        found = rules.problems(given, names=list(values))
        if found:
            raise SettingsError(f"invalid setting in the {source_name}: {'; '.join(found)}")
        merged.update(values)
    settings = msgspec.convert(merged, Settings, strict=False)
    check_settings(settings)
    return settings


def check_settings(settings: Settings) -> None:
    """Raise SettingsError (one line, every problem) unless each setting and combination is valid."""
    found = rules.problems(settings)
    if found:
        raise SettingsError(f"invalid setting{'s' if len(found) > 1 else ''}: {'; '.join(found)}")
