"""The rule table of the settings (transports/config/rules.py): every setting has a rule, the defaults pass,
values that would break the service at run time are refused with one line naming the setting."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transports.config.loading import SettingsError, check_settings, load_settings
from transports.config.rules import RULES, problems, value_problem, warnings
from transports.config.settings import Settings


def test_every_setting_has_exactly_one_rule() -> None:
    assert set(RULES) == set(Settings.__struct_fields__), (
        "add one line per setting to RULES in transports/config/rules.py (TYPE_ONLY if its type says it all)")


def test_the_defaults_pass_every_rule() -> None:
    assert problems(Settings()) == []
    assert warnings(Settings()) == []
    check_settings(Settings())


# (setting, a value the service could not run with, what the message must say)
REFUSED: list[tuple[str, Any, str]] = [
    ("max_page_size", 0, "max_page_size = 0: must be at least 1"),
    ("max_page_size", -1, "must be at least 1"),
    ("max_batch", -5, "max_batch = -5: must be at least 1"),
    ("max_batch", 0, "must be at least 1"),
    ("mailbox_capacity", 0, "mailbox_capacity = 0: must be at least 1"),
    ("segment_bytes", 10, "segment_bytes = 10: must be at least 4096"),
    ("snapshot_every_records", 0, "must be at least 1"),
    ("snapshot_every_bytes", 100, "must be at least 4096"),
    ("port", 70000, "port = 70000: must be from 0 to 65535"),
    ("port", -1, "must be from 0 to 65535"),
    ("http_max_connections", 0, "must be from 1 to 1000000"),
    ("http_max_connections", 2_000_000, "http_max_connections = 2000000: must be from 1 to 1000000"),
    ("mqtt_keepalive", 0, "mqtt_keepalive = 0: must be from 5 to 65535"),
    ("mqtt_keepalive", 65536, "must be from 5 to 65535"),
    ("host", "", "must not be empty"),
    ("host", "local host", "must not contain spaces"),
    ("host", "unix:/tmp/sock", "not a socket path"),
    ("host", "fd://3", "not a socket path"),
    ("host", "a\x00b", "control characters"),
    ("data_dir", " ", "must not be empty"),
    ("data_dir", "da\nta", "control characters"),
    ("tls_cert", "", "must not be empty"),
    ("mqtt_tls_key", "", "must not be empty"),
    ("mqtt_url", "mqtt://broker/some/path", "has a path, query or fragment"),
    ("mqtt_url", "mqtt://broker?x=1", "has a path, query or fragment"),
    ("mqtt_url", "mqtt://broker#frag", "has a path, query or fragment"),
    ("mqtt_url", "mqtt://broker:0", "bad port"),
    ("mqtt_url", "mqtt://broker:65536", "bad port"),
    ("mqtt_url", "http://broker", "unsupported MQTT broker URL 'http://broker'"),
    ("mqtt_url", "mqtt://", "unsupported MQTT broker URL"),
    ("mqtt_url", "", "unsupported MQTT broker URL"),
    ("mqtt_client_id", "", "must not be empty"),
    ("mqtt_client_id", "id\x00", "control characters"),
    ("mqtt_client_id", "x" * 65_536, "at most 65535 bytes"),
    ("mqtt_username", "", "must not be empty"),
    ("mqtt_topic_prefix", "", "must not be empty"),
    ("mqtt_topic_prefix", "arrowhead/+/x", "wildcards"),
    ("mqtt_topic_prefix", "arrowhead/#", "wildcards"),
    ("mqtt_topic_prefix", "$SYS/lockstore", "must not start with $"),
    ("mqtt_topic_prefix", "a\x00b", "control characters"),
    ("mqtt_topic_prefix", "arrowhead/serviceorchestration/", "must not end with /"),
    ("management_whitelist", ["Good", " "], "entry 2 (' ') is blank"),
    ("management_whitelist", ["2ndSystem"], "entry 1 ('2ndSystem') is not a valid system name"),
]


@pytest.mark.parametrize(("name", "value", "fragment"), REFUSED, ids=[f"{n}={v!r:.30}" for n, v, _ in REFUSED])
def test_values_that_break_the_service_are_refused(name: str, value: Any, fragment: str) -> None:
    problem = value_problem(name, value)
    assert problem is not None and problem.startswith(f"{name}") and fragment in problem, problem
    assert "\n" not in problem and len(problem) < 400
    with pytest.raises(SettingsError, match=f"^invalid settings?: {name}"):
        check_settings(Settings(**{name: value}))


ACCEPTED: list[tuple[str, Any]] = [
    ("port", 0), ("port", 65535), ("max_page_size", 1), ("max_batch", 1), ("mailbox_capacity", 1),
    ("segment_bytes", 4096), ("snapshot_every_records", 1), ("mqtt_keepalive", 5), ("mqtt_keepalive", 65535),
    ("host", "0.0.0.0"), ("host", "::1"), ("host", "[::1]"), ("host", "localhost"), ("host", "my-host.example.org"),
    ("mqtt_url", "mqtt://broker"), ("mqtt_url", "mqtt://broker/"), ("mqtt_url", "mqtts://broker:8883"),
    ("mqtt_url", "ssl://[::1]:1"), ("mqtt_topic_prefix", "site/a"), ("mqtt_topic_prefix", "x"),
    ("management_whitelist", ["TemperatureManager", "my-system"]), ("mqtt_password", ""),
    ("mqtt_client_id", "lockstore-host-1a2b"), ("data_dir", "/var/lib/lockstore"),
]


@pytest.mark.parametrize(("name", "value"), ACCEPTED)
def test_values_that_work_are_accepted(name: str, value: Any) -> None:
    assert value_problem(name, value) is None


def test_unset_optional_settings_are_always_fine() -> None:
    for name in Settings.__struct_fields__:
        assert value_problem(name, None) is None


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"management_policy": "whitelist"}, "management_policy 'whitelist' needs a non-empty management_whitelist"),
        ({"tls_cert": "a.pem"}, "tls_cert and tls_key go together"),
        ({"tls_key": "a.key"}, "tls_cert and tls_key go together"),
        ({"mqtt_tls_cert": "c.pem"}, "mqtt_tls_cert and mqtt_tls_key go together"),
        ({"tls_client_auth": "optional"}, "tls_client_auth 'optional' needs HTTPS"),
        ({"tls_client_auth": "required", "tls_cert": "c", "tls_key": "k"}, "tls_client_auth 'required' needs tls_ca"),
        ({"authentication_policy": "certificate"}, "authentication_policy 'certificate' needs HTTPS"),
        ({"authentication_policy": "certificate", "tls_cert": "c", "tls_key": "k"}, "needs tls_ca"),
        ({"authentication_policy": "certificate", "tls_cert": "c", "tls_key": "k", "tls_ca": "ca"},
         "needs tls_client_auth 'optional' or 'required'"),
    ],
)
def test_settings_that_only_work_together(overrides: dict[str, Any], fragment: str) -> None:
    found = problems(Settings(**overrides))
    assert any(fragment in problem for problem in found), found


def test_a_good_combination_passes() -> None:
    settings = Settings(authentication_policy="certificate", tls_cert="c", tls_key="k", tls_ca="ca",
                        tls_client_auth="required", management_policy="whitelist", management_whitelist=["A"])
    assert problems(settings) == []


def test_warnings() -> None:
    assert any("anybody" in w and "management_policy 'disabled'" in w
               for w in warnings(Settings(management_policy="disabled")))
    assert any("management_whitelist is ignored" in w for w in warnings(Settings(management_whitelist=["A"])))
    assert any("mqtt_tls_ca ignored" in w for w in warnings(Settings(mqtt_url="mqtt://b", mqtt_tls_ca="ca.pem")))
    assert warnings(Settings(mqtt_url="mqtts://b", mqtt_tls_ca="ca.pem")) == []


def test_secrets_never_appear_in_messages() -> None:
    problem = value_problem("mqtt_password", "hunter2" * 20_000)
    assert problem is not None and "hunter2" not in problem and "'***'" in problem
    url_problem = value_problem("mqtt_url", "mqtt://user:hunter2@broker/path")
    assert url_problem is not None and "hunter2" not in url_problem and "***@broker" in url_problem
    assert value_problem("mqtt_url", "mqtt://user:hunter2@broker") is None
    (warning,) = warnings(Settings(mqtt_url="mqtt://user:hunter2@broker"))
    assert "hunter2" not in warning and "not used" in warning


def test_load_settings_names_the_source_of_a_bad_value(tmp_path: Any) -> None:
    with pytest.raises(SettingsError, match=r"^invalid setting in the environment: max_batch = -5: must be at least 1$"):
        load_settings({}, {"LOCKSTORE_MAX_BATCH": "-5"})
    config = tmp_path / "c.toml"
    config.write_text("max_page_size = 0\n")
    with pytest.raises(SettingsError, match=r"^invalid setting in the config file: max_page_size = 0"):
        load_settings({}, {}, config)
    with pytest.raises(SettingsError, match=r"^invalid setting in the command line: mailbox_capacity = 0"):
        load_settings({"mailbox_capacity": 0}, {})
    # a bad value in a lower source that a higher one overrides is still refused: the file must be fixed too
    with pytest.raises(SettingsError, match="config file"):
        load_settings({"max_page_size": 10}, {}, config)
    with pytest.raises(SettingsError, match=r"^invalid setting: management_policy 'whitelist' needs"):
        load_settings({"management_policy": "whitelist"}, {"LOCKSTORE_MANAGEMENT_WHITELIST": " , "})


async def test_run_service_checks_the_rules_too(tmp_path: Any) -> None:
    """Settings built in code (tests, benchmarks) go through the same rules before anything is opened."""
    from transports.service import run_service

    data = tmp_path / "data"
    with pytest.raises(SettingsError, match="max_page_size = 0"):
        await run_service(Settings(port=0, data_dir=str(data), max_page_size=0), handle_signals=False)
    assert not data.exists()


@given(st.integers())
def test_integer_ranges_against_a_model(value: int) -> None:
    assert (value_problem("port", value) is None) == (0 <= value <= 65_535)
    assert (value_problem("max_page_size", value) is None) == (value >= 1)
    assert (value_problem("segment_bytes", value) is None) == (value >= 4096)
    assert (value_problem("mqtt_keepalive", value) is None) == (5 <= value <= 65_535)


@given(st.text(max_size=40))
def test_an_accepted_topic_prefix_is_safe_to_subscribe_under(prefix: str) -> None:
    if value_problem("mqtt_topic_prefix", prefix) is None:
        assert prefix.strip() and prefix.isprintable()
        assert not ({"+", "#", "\x00"} & set(prefix)) and not prefix.startswith("$") and not prefix.endswith("/")
    else:
        assert (value_problem("mqtt_topic_prefix", prefix) or "").startswith("mqtt_topic_prefix")


# ------------------------------------------------------------------------------------------- etcd mode (issue 15)

ETCD_REFUSED: list[tuple[str, Any, str]] = [
    ("etcd_endpoints", ["ftp://h:2379"], "entry 1 ('ftp://h:2379') is not http://host:port or https://host:port"),
    ("etcd_endpoints", ["http://h"], "is not http://host:port"),
    ("etcd_endpoints", ["http://h:2379/v3"], "no path, query or user"),
    ("etcd_endpoints", ["http://h:2379", "h2:2379"], "entry 2 ('h2:2379')"),
    ("etcd_prefix", " ", "must not be empty"),
    ("etcd_prefix", "a\nb", "control characters"),
    ("etcd_ca", "", "must not be empty"),
    ("etcd_user", "", "must not be empty"),
    ("etcd_skew_margin", -1.0, "from 0 to 3600"),
    ("etcd_skew_margin", float("nan"), "from 0 to 3600"),
    ("etcd_request_timeout", 0.0, "from 0.1 to 600"),
    ("etcd_deadline", float("inf"), "from 0.1 to 3600"),
    ("etcd_catch_up", 0.0, "from 0.1 to 3600"),
    ("etcd_expiry_lease_ttl", 1, "from 2 to 3600"),
    ("mqtt_shared_group", "a/b", "must not contain /, + or #"),
    ("mqtt_shared_group", "g+", "must not contain /, + or #"),
    ("mqtt_shared_group", " ", "must not be empty"),
    ("mqtt_shared_group", "g\x00", "control characters"),
]


@pytest.mark.parametrize(("name", "value", "fragment"), ETCD_REFUSED,
                         ids=[f"{n}={v!r:.30}" for n, v, _ in ETCD_REFUSED])
def test_etcd_and_shared_group_values_that_cannot_work_are_refused(name: str, value: Any, fragment: str) -> None:
    problem = value_problem(name, value)
    assert problem is not None and problem.startswith(name) and fragment in problem, problem


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"state": "etcd"}, "state 'etcd' needs etcd_endpoints"),
        ({"state": "etcd", "etcd_endpoints": ["http://a:1", "https://b:2"]}, "mix http:// and https://"),
        ({"etcd_cert": "c.pem"}, "etcd_cert and etcd_key go together"),
        ({"etcd_user": "root"}, "etcd_user needs etcd_password (give it as LOCKSTORE_ETCD_PASSWORD"),
        ({"etcd_password": "x"}, "etcd_password needs etcd_user"),
        ({"etcd_deadline": 1.0, "etcd_request_timeout": 5.0}, "etcd_deadline (1 s) must be at least"),
        ({"state": "etcd", "etcd_endpoints": ["http://a:1"], "max_batch": 100_000}, "at most 99999 with state 'etcd'"),
    ],
)
def test_etcd_settings_that_only_work_together(overrides: dict[str, Any], fragment: str) -> None:
    found = problems(Settings(**overrides))
    assert any(fragment in problem for problem in found), found


def test_etcd_mode_from_the_command_line_environment_and_file(tmp_path: Any) -> None:
    config = tmp_path / "c.toml"
    config.write_text('state = "etcd"\netcd_endpoints = ["http://h1:2379"]\netcd_prefix = "site-a/"\n')
    settings = load_settings({"etcd_endpoints": "http://h1:2379,http://h2:2379, http://h3:2379"},
                             {"LOCKSTORE_ETCD_USER": "lockstore", "LOCKSTORE_ETCD_PASSWORD": "pw"}, config)
    assert settings.state == "etcd" and settings.etcd_prefix == "site-a/"
    assert settings.etcd_endpoints == ["http://h1:2379", "http://h2:2379", "http://h3:2379"]  # CLI > file
    assert (settings.etcd_user, settings.etcd_password) == ("lockstore", "pw")
    assert warnings(settings) == ["etcd_user: the etcd password is sent over plain http:// (use https:// endpoints "
                                  "outside a trusted network)"]


def test_etcd_password_and_endpoint_credentials_never_appear_in_messages() -> None:
    problem = value_problem("etcd_password", "")
    assert problem is not None and "'***'" in problem
    with pytest.raises(SettingsError) as refused:
        load_settings({"etcd_endpoints": "http://root:hunter2@h:2379"}, {})
    assert "hunter2" not in str(refused.value) and "***@h:2379" in str(refused.value)
    with pytest.raises(SettingsError) as refused:  # a password that breaks a rule is named, never shown
        load_settings({}, {"LOCKSTORE_ETCD_USER": "root", "LOCKSTORE_ETCD_PASSWORD": "hunter2" * 1000})
    assert "hunter2" not in str(refused.value) and "etcd_password = '***'" in str(refused.value)


def test_a_shared_group_name_that_works_is_accepted() -> None:
    assert value_problem("mqtt_shared_group", "lockstore") is None
    assert value_problem("mqtt_shared_group", "site-a.lockstore_1") is None


def test_etcd_settings_in_local_mode_are_warned_about() -> None:
    assert any("etcd_endpoints ignored: state is 'local'" in w
               for w in warnings(Settings(etcd_endpoints=["http://h:2379"])))
    assert any("etcd_ca ignored: etcd_endpoints are not https://" in w
               for w in warnings(Settings(state="etcd", etcd_endpoints=["http://h:2379"], etcd_ca="ca.pem")))
