"""Settings precedence: command line > environment > file > defaults; bad values are clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from transports.cli import build_parser
from transports.config.loading import SettingsError, load_settings
from transports.config.settings import Settings


def test_defaults() -> None:
    settings = load_settings({}, {})
    assert settings == Settings()
    assert (settings.port, settings.max_page_size, settings.fsync, settings.management_policy) == (
        8441, 1000, "always", "sysop-only")


def test_precedence(tmp_path: Path) -> None:
    config = tmp_path / "lockstore.toml"
    config.write_text('port = 9000\nmax-page-size = 50\nmanagement_whitelist = ["A", "B"]\nfsync = "never"\n')
    env = {"LOCKSTORE_PORT": "9100", "LOCKSTORE_MAX_BATCH": "7", "LOCKSTORE_MANAGEMENT_WHITELIST": "C, D", "OTHER": "x"}
    settings = load_settings({"port": 9200, "host": None}, env, config)
    assert settings.port == 9200  # CLI beats env beats file
    assert settings.max_batch == 7  # env
    assert settings.max_page_size == 50  # file
    assert settings.management_whitelist == ["C", "D"]  # env beats file, split on commas
    assert settings.fsync == "never"
    assert settings.host == "127.0.0.1"  # not given anywhere: default


@pytest.mark.parametrize(
    ("cli", "env", "file_text", "fragment"),
    [
        ({}, {"LOCKSTORE_PORT": "eighty"}, None, "environment"),
        ({}, {}, "prot = 1\n", "unknown field `prot`"),
        ({}, {}, "port = [\n", "not valid TOML"),
        ({"fsync": "sometimes"}, {}, None, "command line"),
    ],
)
def test_errors_name_the_source(tmp_path: Path, cli: dict[str, object], env: dict[str, str],
                                file_text: str | None, fragment: str) -> None:
    config = None
    if file_text is not None:
        config = tmp_path / "c.toml"
        config.write_text(file_text)
    with pytest.raises(SettingsError, match=fragment):
        load_settings(cli, env, config)


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read config file"):
        load_settings({}, {}, tmp_path / "absent.toml")


def test_help_documents_every_setting() -> None:
    serve_help = build_parser()._subparsers._group_actions[0].choices["serve"].format_help()  # type: ignore[union-attr]
    for name in Settings.__struct_fields__:
        assert "--" + name.replace("_", "-") in serve_help
        assert "LOCKSTORE_" + name.upper() in serve_help


def test_console_script_reports_bad_settings_without_traceback() -> None:
    result = subprocess.run([sys.executable, "-m", "transports.cli", "serve", "--port", "x"],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert "invalid setting in the command line" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bind_failure_inside_the_servers_task_tree_is_recognised() -> None:
    """The start-up check binds first; a port taken in the moment after it fails inside hypercorn's nurseries
    and arrives wrapped in exception groups: the CLI still reports it as one line."""
    import errno
    import socket

    from transports.cli import _only_bind_failure

    in_use = OSError(errno.EADDRINUSE, "Address already in use")
    nested = BaseExceptionGroup("outer", [ExceptionGroup("inner", [in_use])])
    assert _only_bind_failure(nested) is in_use
    unresolvable = socket.gaierror(-2, "Name or service not known")
    assert _only_bind_failure(ExceptionGroup("g", [unresolvable])) is unresolvable
    assert _only_bind_failure(ExceptionGroup("g", [in_use, ValueError()])) is None  # not only a bind failure
    assert _only_bind_failure(ExceptionGroup("g", [OSError(errno.EIO, "I/O error")])) is None  # a disk error
