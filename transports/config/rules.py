"""What each setting may be: one declarative table of pure checks, run at start-up.

A setting that is accepted must work. `max_page_size = 0` would turn every lock query into a 500 and
`max_batch = -5` would refuse every create, so such values stop start-up instead, with one line that names
the setting, its value and the allowed range. Types are msgspec's job (transports/config/settings.py); these rules
check what a type cannot say: ranges, shapes, and settings that only work together.

How to add a rule for a new setting
-----------------------------------
1. Declare the setting in `Settings` and `HELP` (transports/config/settings.py).
2. Add ONE line to `RULES` below, built from the checks in this module, e.g.::

       "mqtt_max_request_bytes": at_least(1024),
       "mqtt_reply_topic_prefix": mqtt_topic_filter_free,

   `all_of(a, b)` combines checks; `TYPE_ONLY` says the type already allows nothing wrong (a bool, a
   Literal). A rule sees only set values: None (an optional setting left unset) is always fine. A check is
   a plain function `value -> None | "reason"`; the reason completes "<name> = <value>: <reason>" (or
   "<name>: <reason>" when the reason quotes the value itself).
3. A rule about several settings at once goes into `COMBINATIONS`: a function of the whole `Settings`
   returning a full message or None. Something legal but risky goes into `WARNINGS` the same way (logged
   at WARNING when the service starts).

tests/unit/test_setting_rules.py fails while a setting has no line in `RULES`, and checks that the
defaults pass every rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transports.config.settings import Settings

Check = Callable[[Any], str | None]  # value → None when fine, else the reason
SettingsCheck = Callable[["Settings"], str | None]  # all settings → None when fine, else a whole message

SECRET_SETTINGS = frozenset({"mqtt_password", "etcd_password"})  # never echoed in a message
MQTT_STRING_BYTES = 65_535  # an MQTT UTF-8 string (client id, user name, topic) has a 16-bit length
MIN_LOG_BYTES = 4096  # log segments and snapshot intervals below a page make no sense


def TYPE_ONLY(value: Any) -> str | None:
    """The type already rules out every bad value (bool, Literal)."""
    return None


# ------------------------------------------------------------------------------------------- checks


def at_least(low: int) -> Check:
    def check(value: int) -> str | None:
        return None if value >= low else f"must be at least {low}"
    return check


def between(low: int, high: int) -> Check:
    def check(value: int) -> str | None:
        return None if low <= value <= high else f"must be from {low} to {high}"
    return check


def seconds_at_least(low: float) -> Check:
    """A finite number of seconds (NaN and infinity would make a wait that never ends or never waits)."""
    def check(value: float) -> str | None:
        return None if low <= value < float("inf") else f"must be a number of seconds of at least {low}"
    return check


def all_of(*checks: Check) -> Check:
    def check(value: Any) -> str | None:
        for one in checks:
            reason = one(value)
            if reason is not None:
                return reason
        return None
    return check


def not_blank(value: str) -> str | None:
    return "must not be empty (leave the setting out instead)" if not value.strip() else None


def printable(value: str) -> str | None:
    """No control characters (NUL, newlines, ESC …): they would end up in file names, topics or log lines."""
    return None if value.isprintable() else "must not contain control characters"


def no_whitespace(value: str) -> str | None:
    return "must not contain spaces" if any(c.isspace() for c in value) else None


def utf8_at_most(limit: int) -> Check:
    def check(value: str) -> str | None:
        size = len(value.encode("utf-8", "surrogatepass"))
        return None if size <= limit else f"must be at most {limit} bytes in UTF-8 (it is {size})"
    return check


def each(check: Check) -> Check:
    """Apply `check` to every entry of a list; the reason names the entry."""
    def check_all(values: Sequence[Any]) -> str | None:
        for index, value in enumerate(values):
            reason = check(value)
            if reason is not None:
                return f"entry {index + 1} ({value!r}) {reason}"
        return None
    return check_all


def host_address(value: str) -> str | None:
    """A host name or IP address to bind to (resolved, and checked to be local, when the service starts)."""
    reason = all_of(not_blank, printable, no_whitespace)(value)
    if reason is not None:
        return reason
    if value.startswith(("unix:", "fd://")) or "/" in value:
        return "must be a host name or an IP address (not a socket path)"
    if len(value) > 255:
        return "must be at most 255 characters"
    return None


def file_path(value: str) -> str | None:
    return all_of(not_blank, printable)(value)


def broker_url(value: str) -> str | None:
    from transports.config.broker_url import MqttUrlError, parse_broker_url

    try:
        parse_broker_url(value)
    except MqttUrlError as error:
        return str(error)  # names the URL (without credentials) itself
    return None


def mqtt_text(value: str) -> str | None:
    """An MQTT UTF-8 string: no NUL or other control characters, at most 65,535 bytes."""
    return all_of(printable, utf8_at_most(MQTT_STRING_BYTES))(value)


def mqtt_topic_filter_free(value: str) -> str | None:
    """A topic (prefix) to publish or subscribe under: no wildcards, no `$` (broker topics), no NUL."""
    reason = all_of(not_blank, mqtt_text)(value)
    if reason is not None:
        return reason
    if "+" in value or "#" in value:
        return "must not contain the MQTT wildcards + or #"
    if value.startswith("$"):
        return "must not start with $ (reserved for the broker's own topics)"
    return None


def share_name(value: str) -> str | None:
    """A shared subscription group (`$share/<name>/<filter>`, MQTT 5 §4.8.2): one topic level, no wildcards."""
    reason = all_of(not_blank, mqtt_text)(value)
    if reason is not None:
        return reason
    if any(char in value for char in "/+#"):
        return "must not contain /, + or # (a share name is one topic level without wildcards)"
    return None


def reply_topic_prefix(value: str) -> str | None:
    """Where replies may go: a topic a reply could really be published to (see transports/api/topics.py)."""
    from transports.api.topics import prefix_setting_problem

    return prefix_setting_problem(value)


def topic_prefix(value: str) -> str | None:
    """The request topic prefix: operation paths (`/orchestration/…`) are appended to it."""
    reason = mqtt_topic_filter_free(value)
    if reason is not None:
        return reason
    if value.endswith("/"):
        return "must not end with / (the operation topics add their own)"
    return None


def system_name(value: str) -> str | None:
    """A name a requester can have: valid after the reference's SystemName normalisation."""
    from transports.api.errors import ArrowheadError
    from transports.api.names import normalize_system_name, validate_system_name

    if not value.strip():
        return "is blank"
    try:
        validate_system_name(normalize_system_name(value))
    except ArrowheadError as error:
        return f"is not a valid system name: {error.message}"
    return None


def etcd_endpoint(value: str) -> str | None:
    """One etcd client URL, as the client will use it (actors/etcd/failover.py)."""
    from actors.etcd.failover import parse_endpoints

    reason = all_of(not_blank, printable)(value)
    if reason is not None:
        return reason
    if "@" in value:
        return "must not hold a user name or password (use etcd_user and etcd_password)"
    try:
        parse_endpoints([value])
    except ValueError as error:  # "etcd endpoint 'x' is not http://host:port ...": the entry is named already
        return str(error).replace(f"etcd endpoint {value.strip()!r} ", "", 1)
    return None


def etcd_endpoints(values: Sequence[str]) -> str | None:
    """Every entry an etcd client URL; an entry is named without any user:password@ part it holds."""
    from transports.config.broker_url import redact_url

    for index, value in enumerate(values):
        reason = etcd_endpoint(value)
        if reason is not None:
            return f"entry {index + 1} ({redact_url(value)!r}) {reason}"
    return None


def etcd_prefix(value: str) -> str | None:
    """A key prefix: not blank, no control characters (actors/etcd/keys.py adds the trailing `/`)."""
    return all_of(not_blank, printable, utf8_at_most(1024))(value)


def seconds_between(low: float, high: float) -> Check:
    def check(value: float) -> str | None:
        return None if low <= value <= high else f"must be a number of seconds from {low:g} to {high:g}"
    return check


# ------------------------------------------------------------------------------------------- the table

RULES: dict[str, Check] = {
    "host": host_address,
    "port": between(0, 65_535),  # 0: any free port (tests)
    "http_server": TYPE_ONLY,
    "http_max_connections": between(1, 1_000_000),  # each costs a file descriptor (LimitNOFILE)
    "data_dir": file_path,
    "authentication_policy": TYPE_ONLY,
    "management_policy": TYPE_ONLY,
    "management_whitelist": each(system_name),
    "max_page_size": at_least(1),
    "max_batch": at_least(1),
    "fsync": TYPE_ONLY,
    "segment_bytes": at_least(MIN_LOG_BYTES),
    "snapshot_every_records": at_least(1),
    "snapshot_every_bytes": at_least(MIN_LOG_BYTES),
    "mailbox_capacity": at_least(1),
    "log_level": TYPE_ONLY,
    "log_format": TYPE_ONLY,
    "access_log": TYPE_ONLY,
    "tls_cert": file_path,
    "tls_key": file_path,
    "tls_ca": file_path,
    "tls_client_auth": TYPE_ONLY,
    "mqtt_request_signatures": TYPE_ONLY,
    "mqtt_signature_window": between(1, 3600),  # seconds either side of the service's clock
    "mqtt_url": broker_url,
    "mqtt_client_id": all_of(not_blank, mqtt_text),
    "mqtt_username": all_of(not_blank, mqtt_text),
    "mqtt_password": utf8_at_most(MQTT_STRING_BYTES),
    "mqtt_keepalive": between(5, 65_535),  # a 16-bit field; under ~5 s a busy moment drops the link
    "mqtt_protocol": TYPE_ONLY,
    "mqtt_topic_prefix": topic_prefix,
    "mqtt_tls_ca": file_path,
    "mqtt_tls_cert": file_path,
    "mqtt_tls_key": file_path,
    "mqtt_tls_verify_hostname": TYPE_ONLY,
    "mqtt_max_request_bytes": at_least(1024),
    "mqtt_reply_topic_prefix": reply_topic_prefix,
    "mqtt_shared_group": share_name,
    "service_registry": all_of(not_blank, printable),  # its shape: transports/service_registry/plan.py
    "service_registry_addresses": each(all_of(not_blank, printable)),
    "service_registry_system_name": not_blank,
    "service_registry_required": TYPE_ONLY,
    "service_registry_attempts": at_least(1),
    "service_registry_retry_interval": seconds_at_least(0),
    "service_registry_timeout": seconds_at_least(0.001),
    "state": TYPE_ONLY,
    "etcd_endpoints": etcd_endpoints,
    "etcd_prefix": etcd_prefix,
    "etcd_ca": file_path,
    "etcd_cert": file_path,
    "etcd_key": file_path,
    "etcd_user": all_of(not_blank, printable),
    "etcd_password": all_of(not_blank, utf8_at_most(4096)),
    "etcd_skew_margin": seconds_between(0, 3600),  # an hour of disagreement is a broken clock, not skew
    "etcd_request_timeout": seconds_between(0.1, 600),
    "etcd_deadline": seconds_between(0.1, 3600),
    "etcd_catch_up": seconds_between(0.1, 3600),
    "etcd_expiry_lease_ttl": between(2, 3600),  # etcd raises shorter TTLs to its own minimum anyway
}


def _pair(first: str, second: str, what: str) -> SettingsCheck:
    def check(settings: Settings) -> str | None:
        if (getattr(settings, first) is None) != (getattr(settings, second) is None):
            return f"{first} and {second} go together: {what}"
        return None
    return check


def _whitelist_needed(settings: Settings) -> str | None:
    if settings.management_policy == "whitelist" and not any(n.strip() for n in settings.management_whitelist):
        return ("management_policy 'whitelist' needs a non-empty management_whitelist (with none, only Sysop "
                "could manage: use 'sysop-only' for that)")
    return None


def _client_auth_needs_https(settings: Settings) -> str | None:
    if settings.tls_client_auth == "none":
        return None
    if settings.tls_cert is None:
        return f"tls_client_auth {settings.tls_client_auth!r} needs HTTPS: set tls_cert and tls_key"
    if settings.tls_ca is None:
        return (f"tls_client_auth {settings.tls_client_auth!r} needs tls_ca, the CA that client certificates "
                "must come from")
    return None


def _certificate_policy_needs_tls(settings: Settings) -> str | None:
    if settings.authentication_policy != "certificate":
        return None
    if settings.tls_cert is None:
        return ("authentication_policy 'certificate' needs HTTPS: set tls_cert, tls_key and tls_ca (the service's "
                "own certificate names its cloud)")
    if settings.tls_ca is None:
        return "authentication_policy 'certificate' needs tls_ca, the CA that client certificates must come from"
    if settings.tls_client_auth == "none":
        return ("authentication_policy 'certificate' needs tls_client_auth 'optional' or 'required' (with 'none' "
                "HTTPS clients are never asked for a certificate)")
    return None


def _signatures_need_certificates(settings: Settings) -> str | None:
    if settings.mqtt_request_signatures == "required" and settings.authentication_policy != "certificate":
        return ("mqtt_request_signatures 'required' needs authentication_policy 'certificate' (a request is signed "
                "with the key of the certificate in its authentication field)")
    return None


def _etcd_needs_endpoints(settings: Settings) -> str | None:
    if settings.state == "etcd" and not settings.etcd_endpoints:
        return ("state 'etcd' needs etcd_endpoints, the client URLs of the etcd members "
                "(e.g. http://h1:2379,http://h2:2379,http://h3:2379)")
    return None


def _etcd_endpoints_agree(settings: Settings) -> str | None:
    schemes = {endpoint.partition("://")[0] for endpoint in settings.etcd_endpoints}
    if len(schemes) > 1:
        return "etcd_endpoints mix http:// and https:// (every member is reached the same way)"
    return None


def _etcd_user_needs_password(settings: Settings) -> str | None:
    if settings.etcd_user is not None and settings.etcd_password is None:
        return "etcd_user needs etcd_password (give it as LOCKSTORE_ETCD_PASSWORD in the environment)"
    if settings.etcd_password is not None and settings.etcd_user is None:
        return "etcd_password needs etcd_user"
    return None


def _etcd_deadline_covers_a_request(settings: Settings) -> str | None:
    if settings.etcd_deadline < settings.etcd_request_timeout:
        return (f"etcd_deadline ({settings.etcd_deadline:g} s) must be at least etcd_request_timeout "
                f"({settings.etcd_request_timeout:g} s): a call's deadline covers its attempts")
    return None


def _etcd_batch_fits_lock_ids(settings: Settings) -> str | None:
    # A lock id is the granting txn's revision × 100,000 + the lock's place in its create (actors/etcd/values.py).
    if settings.state == "etcd" and settings.max_batch > 99_999:
        return f"max_batch = {settings.max_batch}: must be at most 99999 with state 'etcd' (lock ids hold the position)"
    return None


COMBINATIONS: list[SettingsCheck] = [
    _pair("tls_cert", "tls_key", "give both to serve HTTPS, or neither"),
    _pair("mqtt_tls_cert", "mqtt_tls_key", "give both, or neither"),
    _whitelist_needed,
    _client_auth_needs_https,
    _certificate_policy_needs_tls,
    _signatures_need_certificates,
    _etcd_needs_endpoints,
    _etcd_endpoints_agree,
    _pair("etcd_cert", "etcd_key", "give both to present a client certificate to etcd, or neither"),
    _etcd_user_needs_password,
    _etcd_deadline_covers_a_request,
    _etcd_batch_fits_lock_ids,
]


def _management_disabled(settings: Settings) -> str | None:
    if settings.management_policy == "disabled":
        return ("management_policy 'disabled': anybody who can reach the service may create and remove locks and "
                "rules (no management permission is checked)")
    return None


def _whitelist_unused(settings: Settings) -> str | None:
    if settings.management_whitelist and settings.management_policy != "whitelist":
        return (f"management_whitelist is ignored: management_policy is {settings.management_policy!r}, "
                "not 'whitelist'")
    return None


def _mqtt_tls_unused(settings: Settings) -> str | None:
    from urllib.parse import urlsplit

    given = [name for name in ("mqtt_tls_ca", "mqtt_tls_cert", "mqtt_tls_key") if getattr(settings, name) is not None]
    if given and (settings.mqtt_url is None or urlsplit(settings.mqtt_url).scheme not in ("mqtts", "ssl")):
        return f"{', '.join(given)} ignored: mqtt_url is not an mqtts:// URL"
    return None


def _url_credentials_unused(settings: Settings) -> str | None:
    from urllib.parse import urlsplit

    if settings.mqtt_url is not None and "@" in urlsplit(settings.mqtt_url).netloc:
        return "mqtt_url: the user name and password in the URL are not used; set mqtt_username and mqtt_password"
    return None


ETCD_SETTINGS = ("etcd_endpoints", "etcd_ca", "etcd_cert", "etcd_key", "etcd_user")


def _etcd_settings_unused(settings: Settings) -> str | None:
    given = [name for name in ETCD_SETTINGS if getattr(settings, name) not in (None, [])]
    if given and settings.state != "etcd":
        return f"{', '.join(given)} ignored: state is 'local' (set state 'etcd' to use the cluster)"
    return None


def _etcd_tls_unused(settings: Settings) -> str | None:
    given = [name for name in ("etcd_ca", "etcd_cert", "etcd_key") if getattr(settings, name) is not None]
    if given and settings.state == "etcd" and not any(e.startswith("https://") for e in settings.etcd_endpoints):
        return f"{', '.join(given)} ignored: etcd_endpoints are not https:// URLs"
    return None


def _etcd_password_over_http(settings: Settings) -> str | None:
    if settings.state == "etcd" and settings.etcd_user is not None and \
            any(endpoint.startswith("http://") for endpoint in settings.etcd_endpoints):
        return ("etcd_user: the etcd password is sent over plain http:// (use https:// endpoints outside a "
                "trusted network)")
    return None


WARNINGS: list[SettingsCheck] = [_management_disabled, _whitelist_unused, _mqtt_tls_unused, _url_credentials_unused,
                                 _etcd_settings_unused, _etcd_tls_unused, _etcd_password_over_http]


# ------------------------------------------------------------------------------------------- running them


def shown(name: str, value: Any) -> str:
    """A value for a message: secrets hidden, URLs without credentials, long values cut."""
    if name in SECRET_SETTINGS:
        return "'***'"
    if name == "mqtt_url" and isinstance(value, str):
        from transports.config.broker_url import redact_url

        value = redact_url(value)
    if name == "etcd_endpoints" and isinstance(value, list):
        from transports.config.broker_url import redact_url

        value = [redact_url(entry) if isinstance(entry, str) else entry for entry in value]
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def value_problem(name: str, value: Any) -> str | None:
    """`name = value: reason` if the value breaks the setting's rule, else None (unset values pass)."""
    if value is None:
        return None
    reason = RULES[name](value)
    if reason is None:
        return None
    value_text = shown(name, value)
    return f"{name}: {reason}" if value_text in reason else f"{name} = {value_text}: {reason}"


def problems(settings: Settings, names: Sequence[str] | None = None) -> list[str]:
    """Every broken rule: each setting's own (only `names`, if given), then the combinations (all settings)."""
    found = [problem for name in (names if names is not None else settings.__struct_fields__)
             if (problem := value_problem(name, getattr(settings, name))) is not None]
    if names is None:
        found.extend(message for check in COMBINATIONS if (message := check(settings)) is not None)
    return found


def warnings(settings: Settings) -> list[str]:
    return [message for check in WARNINGS if (message := check(settings)) is not None]
