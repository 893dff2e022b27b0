"""Start-up checks: the settings' rules, then what only the machine can tell (can the HTTP address be
bound, can the data directory be used), before anything is served.

Every failure is one `StartupError`: a single line naming the setting and the cause, and an exit status —
2 when the settings are wrong (a value out of range, a host that does not resolve or is not an address of
this machine, a data_dir that is a file), 1 when the machine refuses valid settings right now (the port is
taken, permission denied, another instance holds the data directory, a disk error, a data directory in a
newer data format). A service manager can then tell the two apart (systemd: `RestartPreventExitStatus=2`).
The CLI prints it without a traceback.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
from pathlib import Path

from actors.snapshots import OpenedState, open_state
from transports.config import rules
from transports.config.loading import check_settings
from transports.config.settings import Settings
from wal.errors import LogUnavailable
from wal.format import UnsupportedFormat

log = logging.getLogger("lockstore")

CONFIGURATION = 2  # exit status: the settings are wrong
RUNTIME = 1  # exit status: the machine refuses them now


class StartupError(Exception):
    """The service cannot start; the message is one line naming the setting and the cause."""

    def __init__(self, message: str, exit_status: int) -> None:
        super().__init__(message)
        self.exit_status = exit_status


def check_before_start(settings: Settings) -> None:
    """What can be checked before the log is opened: every setting's rule (SettingsError), the warnings
    (logged), and that the HTTP address can be bound."""
    check_settings(settings)
    for message in rules.warnings(settings):
        log.warning("%s", message)
    check_http_bind(settings.host, settings.port)


def bind_error(host: str, port: int, error: OSError | OverflowError) -> StartupError:
    """The StartupError for a failed bind of `host`:`port`, by cause."""
    if isinstance(error, OverflowError):
        return StartupError(f"port {port}: out of range (0 to 65535)", CONFIGURATION)
    if isinstance(error, socket.gaierror):
        status = RUNTIME if error.errno == socket.EAI_AGAIN else CONFIGURATION  # EAI_AGAIN: DNS is down
        return StartupError(f"host {host!r}: cannot be resolved ({error.strerror})", status)
    reason = error.strerror or str(error)
    if error.errno == errno.EADDRINUSE:
        return StartupError(f"port {port}: already in use on {host} (another process listens there)", RUNTIME)
    if error.errno == errno.EADDRNOTAVAIL:
        return StartupError(f"host {host!r}: not an address of this machine ({reason})", CONFIGURATION)
    if error.errno == errno.EACCES:
        return StartupError(f"port {port} on {host}: permission denied (ports below 1024 need privileges)", RUNTIME)
    if error.errno in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
        return StartupError(f"host {host!r}: its address family is not supported here ({reason})", CONFIGURATION)
    return StartupError(f"host {host!r}, port {port}: cannot listen there ({reason})", RUNTIME)


def check_http_bind(host: str, port: int) -> None:
    """Bind (and release) the address the HTTP server will take, the way hypercorn will: same address
    family choice, SO_REUSEADDR. Catches an unresolvable or foreign host and a port in use before the log is
    opened; the moment between this check and the server's own bind is covered by the CLI (`bind_error`)."""
    bare = host.replace("[", "").replace("]", "")
    try:
        with socket.socket(socket.AF_INET6 if ":" in bare else socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((bare, port))
    except (OSError, OverflowError) as error:
        raise bind_error(host, port, error) from None


def open_data_dir(settings: Settings) -> OpenedState:
    """Lock the data directory's log, load snapshots and replay (actors/snapshots.open_state), with each
    problem with the directory itself as one StartupError naming data_dir. Corruption stays a
    WalCorruption (file and offset; the CLI reports it)."""
    data_dir = Path(settings.data_dir)
    wal_dir = data_dir / "wal"
    setting = f"data_dir {settings.data_dir}"  # as the operator wrote it
    for path in (data_dir, wal_dir):
        try:
            is_file = not stat.S_ISDIR(os.stat(path).st_mode)
        except FileNotFoundError:
            break
        except OSError as error:
            raise _directory_error(setting, data_dir, error) from None
        if is_file:
            what = "is not a directory" if path == data_dir else f"{path} is not a directory"
            raise StartupError(f"{setting}: {what}", CONFIGURATION)
    try:
        return open_state(wal_dir, fsync=settings.fsync == "always", segment_bytes=settings.segment_bytes)
    except LogUnavailable as error:
        raise StartupError(f"{setting}: {error.message} (another lockstore on the same data_dir?)", RUNTIME) from None
    except UnsupportedFormat as error:  # written by a newer lockstore (wal/format.py): nothing was touched
        raise StartupError(f"{setting}: {error}", RUNTIME) from None
    except OSError as error:
        raise _directory_error(setting, data_dir, error) from None


def _directory_error(setting: str, data_dir: Path, error: OSError) -> StartupError:
    if error.errno == errno.ENOTDIR:
        return StartupError(f"{setting}: a part of its path is a file, not a directory", CONFIGURATION)
    where = f": {error.filename}" if error.filename and str(error.filename) != str(data_dir) else ""
    return StartupError(f"{setting}: cannot use it ({error.strerror or error}{where})", RUNTIME)
