"""`lockstore` command line: `lockstore serve [options]`, `lockstore status --url URL` (a running service at a
glance) and `lockstore certs --out DIR` (throw-away test certificates).

Options are generated from transports.config.settings.Settings, so `--help` documents every setting, with the
environment variable that sets it too.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import trio

from transports.config.loading import SettingsError, load_settings
from transports.config.settings import ENV_PREFIX, HELP, Settings
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
    certs = commands.add_parser(
        "certs", help="write a throw-away CA and Arrowhead-style server, system and operator certificates",
        description="Makes a CA and certificates for trying HTTPS, MQTTS and the certificate policy locally. "
        "The keys are not encrypted: never use these in production.",
    )
    certs.add_argument("--out", type=Path, required=True, help="directory to write the PEM files to")
    certs.add_argument("--cloud", default="TestCloud", help="local cloud name (default: TestCloud)")
    certs.add_argument("--organization", default="Company", help="organization name (default: Company)")
    certs.add_argument("--server-name", default="DynamicServiceOrchestration",
                       help="system name in the server certificate's CN (default: DynamicServiceOrchestration)")
    certs.add_argument("--system", default="TemperatureManager",
                       help="system name of the system client certificate (default: TemperatureManager)")
    certs.add_argument("--operator", default="Operator",
                       help="name in the operator (sysop) client certificate (default: Operator)")
    certs.add_argument("--host", action="append", default=None,
                       help="a DNS name or IP address the server certificate is valid for; repeatable "
                       "(default: localhost, 127.0.0.1, ::1)")
    certs.add_argument("--days", type=int, default=30, help="validity in days (default: 30)")
    certs.add_argument("--force", action="store_true", help="replace existing files")
    status = commands.add_parser("status", help="print a one-screen summary of a running service "
                                 "(readiness, traffic, latency, log, MQTT)")
    status.add_argument("--url", default="http://127.0.0.1:8441", help="base URL of the service "
                        "(default: http://127.0.0.1:8441)")
    status.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each answer (default: 5)")
    status.add_argument("--cafile", type=Path, default=None, help="PEM CA certificate(s) to verify an https:// URL")
    check = commands.add_parser(
        "check", help="report which log segments and snapshots are intact (changes nothing)",
        description="Reads every log segment and snapshot under DATA_DIR/wal. Exit status 0 if all are "
        "intact. With --repair (service stopped): copy the directory to a backup, then keep the longest valid "
        "prefix of the log, dropping damaged snapshots and snapshots past the cut.",
    )
    check.add_argument("--data-dir", type=Path, default=Path("./data"), help="data directory (default: ./data)")
    check.add_argument("--repair", action="store_true", help="repair after making a backup copy")
    dump = commands.add_parser("dump", help="print snapshot and log records as JSON lines")
    dump.add_argument("--data-dir", type=Path, default=Path("./data"), help="data directory (default: ./data)")
    return parser


def _certs(args: argparse.Namespace) -> int:
    from transports.security.certs_tool import DEFAULT_HOSTS, CertsError, describe, write_bundle

    try:
        bundle = write_bundle(
            args.out, cloud=args.cloud, organization=args.organization, server=args.server_name,
            system=args.system, operator=args.operator, hosts=args.host or DEFAULT_HOSTS, days=args.days,
            force=args.force,
        )
    except CertsError as error:
        print(f"lockstore: {error}", file=sys.stderr)
        return 1
    print(describe(bundle))
    return 0


def _configure_logging(settings: Settings) -> None:
    from transports.observability.logging_setup import configure_logging

    configure_logging(settings.log_level, settings.log_format, sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except BrokenPipeError:
        # The reader went away (`lockstore dump | head`): stop quietly. Output still buffered must not
        # raise again when Python flushes stdout at exit, so stdout now goes nowhere.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.command == "certs":
        return _certs(args)
    if args.command in ("check", "dump"):
        from transports import admin

        if args.command == "check":
            return admin.check(args.data_dir, do_repair=args.repair)
        return admin.dump(args.data_dir)
    if args.command == "status":
        from transports.status import run_status

        return run_status(args.url, timeout=args.timeout, cafile=args.cafile)
    cli = {name: getattr(args, name, None) for name in Settings.__struct_fields__}
    env_config = os.environ.get(f"{ENV_PREFIX}CONFIG")
    config_file = args.config or (Path(env_config) if env_config else None)
    try:
        settings = load_settings(cli, os.environ, config_file)
    except SettingsError as error:
        return _refuse(str(error), 2)
    _configure_logging(settings)
    return _serve(settings)


def _refuse(message: str, status: int) -> int:
    print(f"lockstore: {message}", file=sys.stderr)
    return status


def _serve(settings: Settings) -> int:
    """Run the service; a start-up failure is one line on stderr and exit status 2 (the settings are wrong)
    or 1 (the machine refuses them now) — see transports/startup.py."""
    from transports.config.broker_url import MqttUrlError
    from transports.security.tls import TlsConfigError
    from transports.service import run_service
    from transports.service_registry import RegistrationFailed, RegistryConfigError
    from transports.startup import StartupError, bind_error

    try:
        trio.run(run_service, settings)
    except SettingsError as error:
        return _refuse(str(error), 2)
    except StartupError as error:
        return _refuse(str(error), error.exit_status)
    except (TlsConfigError, MqttUrlError, RegistryConfigError) as error:
        return _refuse(f"refusing to start: {error}", 2)
    except (WalCorruption, RegistrationFailed) as error:
        return _refuse(f"refusing to start: {error}", 1)
    except OSError as error:
        return _refuse(str(error), 1)
    except BaseExceptionGroup as group:
        # The HTTP server binds inside its own task tree: a bind that fails although the start-up check
        # passed (someone took the port in between) arrives wrapped in exception groups; so does a
        # StartupError raised inside the service's nurseries (etcd mode's start-up check).
        lone = _lone_leaf(group)
        if isinstance(lone, StartupError):
            return _refuse(str(lone), lone.exit_status)
        bind_failure = _only_bind_failure(group)
        if bind_failure is None:
            raise
        failure = bind_error(settings.host, settings.port, bind_failure)
        return _refuse(str(failure), failure.exit_status)
    return 0


_BIND_ERRNOS = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})


def _lone_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one exception of `group` (nested groups flattened), or None when there are several."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        item = pending.pop()
        if isinstance(item, BaseExceptionGroup):
            pending.extend(item.exceptions)
        else:
            leaves.append(item)
    return leaves[0] if len(leaves) == 1 else None


def _only_bind_failure(group: BaseExceptionGroup[BaseException]) -> OSError | OverflowError | None:
    """The one exception of `group` (nested groups flattened) if it is a failed bind, else None."""
    leaf = _lone_leaf(group)
    if leaf is None:
        return None
    if isinstance(leaf, socket.gaierror | OverflowError):
        return leaf
    if isinstance(leaf, OSError) and leaf.errno in _BIND_ERRNOS:
        return leaf
    return None


if __name__ == "__main__":
    raise SystemExit(main())

