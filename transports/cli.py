"""`lockstore` command line: `lockstore serve [options]`, `lockstore status --url URL` (a running service at a
glance), `lockstore certs --out DIR` (throw-away test certificates), `lockstore check|dump --data-dir D`
(a stopped service's data), `lockstore migrate --data-dir D --to-etcd ...` (a stopped service's state into an
etcd cluster) and `lockstore --version`.

Options are generated from transports.config.settings.Settings, so `--help` documents every setting, with the
environment variable that sets it too.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import trio

from transports.config.loading import SettingsError, load_settings
from transports.config.settings import ENV_PREFIX, HELP, Settings
from transports.observability.metrics import package_version
from wal.errors import WalCorruption
from wal.format import FORMAT_VERSION


def _add_setting_options(parser: argparse.ArgumentParser, only: Sequence[str] | None = None) -> None:
    defaults = Settings()
    struct_info = msgspec.inspect.type_info(Settings)
    assert isinstance(struct_info, msgspec.inspect.StructType)
    for name, info in zip(Settings.__struct_fields__, struct_info.fields, strict=True):
        if only is not None and name not in only:
            continue
        flag = "--" + name.replace("_", "-")
        help_text = f"{HELP[name]} (env {ENV_PREFIX}{name.upper()}; default: {getattr(defaults, name)!r})"
        kwargs: dict[str, Any] = {"dest": name, "default": None, "help": help_text}
        if isinstance(info.type, msgspec.inspect.LiteralType):
            kwargs["choices"] = list(info.type.values)
        elif isinstance(info.type, msgspec.inspect.BoolType):
            kwargs["action"] = argparse.BooleanOptionalAction
        parser.add_argument(flag, **kwargs)


def version_line() -> str:
    """`lockstore 0.2.0 (data format 1)`: the installed package's version and the data format it writes
    (and the newest it reads: wal/format.py)."""
    return f"lockstore {package_version()} (data format {FORMAT_VERSION})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lockstore",
        description="Arrowhead 5 orchestration lock and simple-store management service.",
        epilog="Precedence of settings: command line > environment > config file > defaults.",
    )
    parser.add_argument("--version", action="version", version=version_line(),
                        help="print the version and the data format it writes, and exit")
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
    status.add_argument("--cert", type=Path, default=None,
                        help="PEM client certificate to present (a service with tls_client_auth optional or required)")
    status.add_argument("--key", type=Path, default=None, help="its private key (default: in the --cert file)")
    status.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="ask again until the service is ready, for up to SECONDS (exit status 0 once it "
                        "is; 1 not ready or 2 not answering when the time is up)")
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
    _add_migrate(commands)
    return parser


MIGRATE_SETTINGS = ("etcd_endpoints", "etcd_prefix", "etcd_ca", "etcd_cert", "etcd_key", "etcd_user", "etcd_password",
                    "etcd_request_timeout", "etcd_deadline", "log_level", "log_format")


def _add_migrate(commands: Any) -> None:
    from transports.migrate import DEFAULT_BATCH

    migrate = commands.add_parser(
        "migrate", help="move a stopped single-instance service's locks and rules into an etcd cluster",
        description="Reads DATA_DIR (snapshots and log, without changing them; the service must be stopped) and "
        "writes its live locks and its rules under etcd_prefix in the layout of --state etcd. Lock ids change: "
        "the new ones are larger than any the local log granted. Refuses a prefix that holds keys unless "
        "--allow-non-empty. The etcd settings come from the command line, LOCKSTORE_ETCD_* or --config, as for "
        "serve.",
    )
    migrate.add_argument("--data-dir", type=Path, required=True, help="the stopped service's data directory")
    migrate.add_argument("--to-etcd", action="store_true", required=True,
                         help="the direction: from DATA_DIR into the etcd cluster of the etcd_* settings")
    migrate.add_argument("--config", type=Path, default=None, help="TOML file with settings (the etcd_* ones are used)")
    migrate.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                         help=f"records per etcd txn (default {DEFAULT_BATCH}: within etcd's default limits)")
    migrate.add_argument("--allow-non-empty", action="store_true",
                         help="write into a prefix that holds keys, leaving records whose keys exist as they are")
    migrate.add_argument("--dry-run", action="store_true", help="read DATA_DIR and say what would be moved; "
                         "no etcd request")
    migrate.add_argument("--id-map", type=Path, default=None,
                         help="write one JSON line per moved lock: serviceInstanceId, owner, old and new id")
    _add_setting_options(migrate, MIGRATE_SETTINGS)


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

        return run_status(args.url, timeout=args.timeout, cafile=args.cafile, cert=args.cert, key=args.key,
                          wait=args.wait)
    if args.command == "migrate":
        return _migrate(args)
    cli = {name: getattr(args, name, None) for name in Settings.__struct_fields__}
    env_config = os.environ.get(f"{ENV_PREFIX}CONFIG")
    config_file = args.config or (Path(env_config) if env_config else None)
    try:
        settings = load_settings(cli, os.environ, config_file)
    except SettingsError as error:
        return _refuse(str(error), 2)
    _configure_logging(settings)
    return _serve(settings)


def _migrate(args: argparse.Namespace) -> int:
    """`lockstore migrate`: one line on stderr and exit 2 (settings, a non-empty prefix, limits too small) or 1
    (the directory in use or damaged, etcd unreachable) when it cannot be done; a summary on stdout."""
    from actors.etcd.errors import EtcdError
    from actors.etcd.limits import ClusterLimitsTooSmall
    from transports.etcd_mode import start_error
    from transports.migrate import Report, migrate, write_id_map
    from transports.migrate_source import read_local_state
    from transports.startup import StartupError
    from wal.errors import LogUnavailable

    if not 1 <= args.batch < 100_000:
        return _refuse(f"--batch {args.batch}: must be from 1 to 99999", 2)
    cli = {name: getattr(args, name, None) for name in MIGRATE_SETTINGS}
    env_config = os.environ.get(f"{ENV_PREFIX}CONFIG")
    config_file = args.config or (Path(env_config) if env_config else None)
    try:
        settings = load_settings({**cli, "state": "etcd"}, os.environ, config_file)
    except SettingsError as error:
        return _refuse(str(error), 2)
    _configure_logging(settings)
    try:
        state = read_local_state(args.data_dir)
    except LogUnavailable as error:
        return _refuse(f"data_dir {args.data_dir}: {error.message} (stop the service first)", 1)
    except (WalCorruption, OSError) as error:
        return _refuse(f"data_dir {args.data_dir}: {error} (see lockstore check --data-dir {args.data_dir})", 1)
    print(f"read {args.data_dir}: {state.describe()}")
    if args.dry_run:
        now = time.time()
        expired = sum(1 for lock in state.locks.locks() if lock.expires_at <= now)
        print(f"would move {len(state.locks) - expired} locks ({expired} expired ones stay behind) and "
              f"{len(state.store)} rules; nothing written")
        return 0
    try:
        report: Report = trio.run(partial(migrate, settings, state, time.time(), batch=args.batch,
                                          allow_non_empty=args.allow_non_empty))
    except StartupError as error:
        return _refuse(str(error), error.exit_status)
    except (ClusterLimitsTooSmall, EtcdError) as error:
        refusal = start_error(settings, error)
        return _refuse(str(refusal), refusal.exit_status)
    for line in report.lines(settings.etcd_prefix, ",".join(settings.etcd_endpoints)):
        print(line)
    if args.id_map is not None:
        with args.id_map.open("w", encoding="utf-8") as out:
            write_id_map(report, out)
        print(f"id map: {args.id_map}")
    return 0


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

