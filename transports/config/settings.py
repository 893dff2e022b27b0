"""One typed settings object, loaded from defaults < TOML file < LOCKSTORE_* env < command line.

Modelled on hypercorn's Config: every setting is declared once, with its help text, and the CLI,
the environment and the file all speak the same names (`max_page_size` ↔ `--max-page-size` ↔
`LOCKSTORE_MAX_PAGE_SIZE`). What each value may be (ranges, shapes, combinations) is declared in
transports/config/rules.py, one line per setting: add one there with every new setting. Reading the
sources and checking them is transports/config/loading.py.
"""

from __future__ import annotations

from typing import Literal

import msgspec

ENV_PREFIX = "LOCKSTORE_"


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 8441
    http_server: Literal["native", "hypercorn"] = "native"
    http_max_connections: int = 1024
    data_dir: str = "./data"
    authentication_policy: Literal["declared", "certificate"] = "declared"
    management_policy: Literal["sysop-only", "whitelist", "disabled"] = "sysop-only"
    management_whitelist: list[str] = msgspec.field(default_factory=list)
    max_page_size: int = 1000
    max_batch: int = 1000
    fsync: Literal["always", "never"] = "always"
    segment_bytes: int = 64 << 20
    snapshot_every_records: int = 100_000  # start-up at 10^6 records + a full tail stays under ~4 s (bench.replay)
    snapshot_every_bytes: int = 64 << 20
    mailbox_capacity: int = 1024
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["keyvalue", "json"] = "keyvalue"
    access_log: bool = True
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None
    tls_client_auth: Literal["none", "optional", "required"] = "none"
    mqtt_request_signatures: Literal["off", "required"] = "off"
    mqtt_signature_window: int = 30
    mqtt_url: str | None = None
    mqtt_client_id: str | None = None  # None: lockstore-<host>-<random>, new at every start
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    mqtt_keepalive: int = 30
    mqtt_protocol: Literal["5", "3.1.1"] = "5"
    mqtt_topic_prefix: str = "arrowhead/serviceorchestration"
    mqtt_tls_ca: str | None = None
    mqtt_tls_cert: str | None = None
    mqtt_tls_key: str | None = None
    mqtt_tls_verify_hostname: bool = True
    # MQTT hardening (issue 12): request size, reply-topic prefix.
    mqtt_max_request_bytes: int = 1 << 20
    mqtt_reply_topic_prefix: str | None = None
    mqtt_shared_group: str | None = None  # several instances: $share/<group>/<topic> (issue 15)
    # Joining an Arrowhead local cloud (issue 17; transports/service_registry/). Unset URL = standalone.
    service_registry: str | None = None
    service_registry_addresses: list[str] = msgspec.field(default_factory=list)
    service_registry_system_name: str | None = None
    service_registry_required: bool = False
    service_registry_attempts: int = 4
    service_registry_retry_interval: float = 15.0
    service_registry_timeout: float = 10.0
    # Several instances on an etcd cluster (issue 15; actors/etcd/, transports/etcd_mode.py). Default: local.
    state: Literal["local", "etcd"] = "local"
    etcd_endpoints: list[str] = msgspec.field(default_factory=list)
    etcd_prefix: str = "lockstore/"
    etcd_ca: str | None = None
    etcd_cert: str | None = None
    etcd_key: str | None = None
    etcd_user: str | None = None
    etcd_password: str | None = None
    etcd_skew_margin: float = 0.0
    etcd_request_timeout: float = 5.0
    etcd_deadline: float = 15.0
    etcd_catch_up: float = 10.0
    etcd_expiry_lease_ttl: int = 10


HELP: dict[str, str] = {
    "host": "address the HTTP server binds to",
    "port": "HTTP port (the reference's lock management port is 8441)",
    "http_server": "HTTP front end: 'native' (HTTP/1.1 on httptools, the API answered inline: the fast one) or "
    "'hypercorn' (the stock ASGI server: HTTP/1.1 and HTTP/2)",
    "http_max_connections": "most HTTP connections open at once (native server); at the limit the longest-idle "
    "keep-alive connection is closed for a new one, and when all are busy new clients wait to be accepted",
    "data_dir": "directory of the write-ahead log",
    "authentication_policy": "how callers are identified; 'declared' = Authorization: Bearer SYSTEM//<Name>; "
    "'certificate' = the client certificate's CN <System>.<Cloud>.<Org>.<x>.<y> and dnQualifier sy/op (HTTPS), "
    "or the Base64 PEM certificate in the MQTT authentication field (needs tls_cert, tls_key, tls_ca)",
    "management_policy": "who may call the management services: sysop-only, whitelist or disabled",
    "management_whitelist": "comma-separated system names allowed under the whitelist policy",
    "max_page_size": "largest page a query may ask for; also the default page size",
    "max_batch": "most locks / rules one create request may carry",
    "fsync": "'always' = durable group commit before every reply; 'never' = for benchmarks only",
    "segment_bytes": "size at which the log starts a new segment file",
    "snapshot_every_records": "snapshot both actors once this many records were logged since the last snapshot "
    "(bounds start-up replay); log segments the snapshots cover are then deleted",
    "snapshot_every_bytes": "snapshot both actors once this many log bytes were written since the last snapshot",
    "mailbox_capacity": "messages an actor queues before callers wait (backpressure)",
    "log_level": "DEBUG, INFO, WARNING or ERROR",
    "log_format": "log lines as key=value pairs (logfmt) or as JSON objects, one per line",
    "access_log": "log every HTTP and MQTT request at INFO (request id, traceId, requester, operation, status, "
    "duration)",
    "tls_cert": "PEM certificate (chain) of the service; with tls_key the port serves HTTPS instead of HTTP",
    "tls_key": "PEM private key of tls_cert (unencrypted)",
    "tls_ca": "PEM CA certificate(s) that client certificates must come from; also trusted for mqtts:// brokers",
    "tls_client_auth": "HTTPS client certificates: none (not asked for), optional (asked for, checked if sent) "
    "or required (the handshake fails without one)",
    "mqtt_request_signatures": "with authentication_policy 'certificate': 'required' = every MQTT request must also "
    "carry a signature made with its certificate's private key (proof of possession; see README, Security model); "
    "'off' = the certificate alone identifies the sender, as in the reference",
    "mqtt_signature_window": "seconds a signed MQTT request's timestamp may differ from the service's clock "
    "(either way); a signed request is accepted once within it (1 to 3600)",
    "mqtt_url": "broker to serve MQTT requests through, e.g. mqtt://127.0.0.1:1883 or mqtts://broker:8883 "
    "(unset = MQTT off)",
    "mqtt_client_id": "MQTT client id (unset: lockstore-<host>-<random>, unique per start; a fixed id must differ "
    "between instances, or the broker keeps handing the session from one to the other)",
    "mqtt_username": "MQTT user name",
    "mqtt_password": "MQTT password",
    "mqtt_keepalive": "MQTT keep-alive in seconds",
    "mqtt_protocol": "MQTT version the service speaks to the broker; 5 lets requests use the Response Topic "
    "and Correlation Data properties (3.1.1 clients are served either way)",
    "mqtt_topic_prefix": "prefix of the request topics",
    "mqtt_tls_ca": "PEM CA certificate(s) for an mqtts:// broker (default: tls_ca, else the system's CAs)",
    "mqtt_tls_cert": "PEM client certificate for an mqtts:// broker (default: tls_cert)",
    "mqtt_tls_key": "PEM private key of mqtt_tls_cert (default: tls_key)",
    "mqtt_tls_verify_hostname": "check that the broker's certificate names the host of mqtt_url",
    "mqtt_max_request_bytes": "largest MQTT request payload; bigger ones are dropped unread (counted and logged). "
    "MQTT 5 also tells the broker, which then does not send them",
    "mqtt_reply_topic_prefix": "if set, replies go only to this topic or below it (like the filter <prefix>/#); a "
    "request with another reply topic is not executed (counted and logged). Unset: any topic (reference behaviour)",
}

HELP["mqtt_shared_group"] = (
    "subscribe to the request topics as the shared subscription $share/<group>/<topic>, so that the broker gives "
    "each request to one instance of the group (several instances on one state: give them all the same group); "
    "unset: every instance subscribed receives every request")

LIST_FIELDS = {"management_whitelist"}

# Joining an Arrowhead local cloud (issue 17): help texts, and the one list setting.
HELP.update({
    "service_registry": "ServiceRegistry to register in at start-up (and revoke from at shutdown), "
    "http://host:port or https://host:port (port default 8443); unset = standalone, nothing is registered",
    "service_registry_addresses": "comma-separated addresses (IP or DNS name) to publish for this instance; "
    "default: host when it is a specific address, else this machine's fully qualified name",
    "service_registry_system_name": "system name to register as (declared policy; default "
    "DynamicServiceOrchestration); under the certificate policy the name is the first part of tls_cert's CN",
    "service_registry_required": "on: start-up fails when registration still fails after service_registry_attempts "
    "(the reference's behaviour); off: keep serving and retry in the background, /health/ready DOWN meanwhile",
    "service_registry_attempts": "attempts to reach the ServiceRegistry before start-up fails "
    "(service_registry_required only)",
    "service_registry_retry_interval": "seconds between attempts to reach the ServiceRegistry",
    "service_registry_timeout": "seconds to wait for each ServiceRegistry answer",
})
LIST_FIELDS |= {"service_registry_addresses"}

# Several instances on an etcd cluster (issue 15): help texts, and the one list setting.
HELP.update({
    "state": "where the locks and rules live: 'local' = this process, with its write-ahead log in data_dir; "
    "'etcd' = an etcd cluster shared by several lockstore instances (needs etcd_endpoints; no data_dir is used)",
    "etcd_endpoints": "comma-separated client URLs of the etcd members, http://host:port or https://host:port "
    "(state 'etcd'); requests move on to the next one when one fails",
    "etcd_prefix": "key prefix of this service's records in etcd (instances sharing one state use the same prefix)",
    "etcd_ca": "PEM CA certificate(s) that the etcd members' certificates must come from (https:// endpoints; "
    "default: the system's CAs)",
    "etcd_cert": "PEM client certificate to present to etcd members that require one (with etcd_key)",
    "etcd_key": "PEM private key of etcd_cert (unencrypted)",
    "etcd_user": "etcd user name (when etcd authentication is enabled; needs etcd_password)",
    "etcd_password": "password of etcd_user; better given as LOCKSTORE_ETCD_PASSWORD in the environment "
    "(never logged)",
    "etcd_skew_margin": "seconds an expired lock is still kept from a takeover and from deletion, on top of its "
    "expiresAt: the largest clock difference expected between lockstore hosts (NTP); queries hide it at expiresAt",
    "etcd_request_timeout": "seconds one etcd request may take before it is tried on the next member (a write "
    "whose answer is lost is then settled by reading it back, never sent twice)",
    "etcd_deadline": "seconds one etcd call may take in all, every member and backoff included; then the client "
    "gets 503",
    "etcd_catch_up": "seconds a request waits for this instance's cache to reach the revision it needs; then 503",
    "etcd_expiry_lease_ttl": "seconds of the lease behind the expiry election: how long the deletion of expired "
    "locks pauses when the instance doing it dies",
})
LIST_FIELDS |= {"etcd_endpoints"}
