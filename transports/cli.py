"""`lockstore` command line: `lockstore serve [options]`.

Options are generated from transports.config.Settings, so `--help` documents every setting, with the
environment variable that sets it too.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import trio

from transports.config import ENV_PREFIX, HELP, Settings, SettingsError, load_settings
from wal.errors import WalCorruption


def _add_setting_options(parser: argparse.ArgumentParser) -> None:
    defaults = Settings()
    struct_info = msgspec.inspect.type_info(Settings)
    assert isinstance(struct_info, msgspec.inspect.StructType)
    for name, info in zip(Settings.__struct_fields__, struct_info.fields, strict=True):
        flag = "--" + name.replace("_", "-")
        help_text = f"{HELP[name]} (env {ENV_PREFIX}{name.upper()}; default: {getattr(defaults, name)!r})"
        kwargs: dict[str, Any] = {"dest": name, "default": None, "help": help_text}
        if isinstance(info.type, msgspec.inspect.LiteralType):
            kwargs["choices"] = list(info.type.values)
        elif isinstance(info.type, msgspec.inspect.BoolType):
            kwargs["action"] = argparse.BooleanOptionalAction
        parser.add_argument(flag, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lockstore",
        description="Arrowhead 5 orchestration lock and simple-store management service.",
        epilog="Precedence of settings: command line > environment > config file > defaults.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the service (HTTP, and MQTT when --mqtt-url is set)")
    serve.add_argument("--config", type=Path, default=None, help="TOML file with settings (same names)")
    _add_setting_options(serve)
    return parser


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cli = {name: getattr(args, name, None) for name in Settings.__struct_fields__}
    env_config = os.environ.get(f"{ENV_PREFIX}CONFIG")
    config_file = args.config or (Path(env_config) if env_config else None)
    try:
        settings = load_settings(cli, os.environ, config_file)
    except SettingsError as error:
        print(f"lockstore: {error}", file=sys.stderr)
        return 2
    _configure_logging(settings.log_level)
    if args.command == "serve":
        from transports.service import run_service

        try:
            trio.run(run_service, settings)
        except WalCorruption as error:
            print(f"lockstore: refusing to start: {error}", file=sys.stderr)
            return 1
        except OSError as error:
            print(f"lockstore: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

