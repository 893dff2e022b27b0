"""MQTT request handling without I/O: topic routing, the Arrowhead request/response templates, and
dispatch to the same operations HTTP uses (ARROWHEAD-REFERENCE.md §1.5, DECISIONS.md 13 and the
MQTT rows of "accept both spellings").

`handle()` turns one received message into at most one reply to publish; the MQTT session module
does the network part. The reply topic is checked before anything runs (mqtt_topics): a request whose
reply topic cannot be published to, or lies outside the allowed prefix, is not executed and gets no
reply; it is counted and logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from transports.api.errors import ArrowheadError, ExceptionType, invalid
from transports.api.operations import ECHO_REPLY, Operations, Result, decode_payload
from transports.api.requester import Requester
from transports.api.topics import ReplyTopicRule, reply_topic_problem, shown
from transports.security.certificates import CertificatePolicy, MqttRequest, authenticate_mqtt_certificate
from transports.security.identity import ManagementPolicy, authenticate_mqtt, authorize_management

log = logging.getLogger("lockstore.mqtt")

LOCK_BASE = "/orchestration/management/lock/"
STORE_BASE = "/orchestration/management/store/"
MONITOR_BASE = "/monitor/"

# (base, operation) → the handler name on MqttDispatcher
OPERATIONS: dict[tuple[str, str], str] = {
    (LOCK_BASE, "create"): "lock_create",
    (LOCK_BASE, "query"): "lock_query",
    (LOCK_BASE, "remove"): "lock_remove",
    (STORE_BASE, "query"): "store_query",
    (STORE_BASE, "create"): "store_create",
    (STORE_BASE, "modify-priorities"): "store_modify_priorities",
    (STORE_BASE, "remove"): "store_remove",
    (MONITOR_BASE, "echo"): "echo",
}


def request_topics(prefix: str) -> list[str]:
    """Every topic the service subscribes to."""
    return [f"{prefix}{base}{operation}" for base, operation in OPERATIONS]


class MqttRequestTemplate(msgspec.Struct):
    traceId: str | None = None
    authentication: str | None = None
    responseTopic: str | None = None
    qosRequirement: int | None = None
    params: dict[str, str | None] | None = None
    payload: msgspec.Raw = msgspec.Raw(b"")


class _ResponseTopicOnly(msgspec.Struct):
    """What can still be read from a template that does not parse as a whole."""

    responseTopic: Any = None
    traceId: Any = None


class MqttResponseTemplate(msgspec.Struct, omit_defaults=True, kw_only=True):
    """Fields in the reference's order; traceId and receiver omitted when null, payload always sent
    (the empty string for operations without a result)."""

    status: int
    traceId: str | None = None
    receiver: str | None = None
    payload: Any


@dataclass(frozen=True)
class Reply:
    topic: str
    qos: int
    body: bytes
    correlation_data: bytes | None = None  # MQTT 5: echoed when the request carried it


@dataclass(frozen=True)
class MqttAccess:
    policy: ManagementPolicy
    whitelist: frozenset[str]
    certificate: CertificatePolicy | None = None  # None: the declared policy (`SYSTEM//<Name>`)


_template_decoder = msgspec.json.Decoder(MqttRequestTemplate)
_lenient_decoder = msgspec.json.Decoder(_ResponseTopicOnly)
_encode = msgspec.json.Encoder().encode
_id_list = list[str | None]


class Unroutable(Exception):
    """A message on a topic we do not serve (cannot happen with our subscriptions, but be safe)."""


def route(topic: str, prefix: str) -> tuple[str, str]:
    """topic → (handler name, origin). The origin of MQTT errors is the request topic."""
    if topic.startswith(prefix):
        rest = topic[len(prefix) :]
        base, _, operation = rest.rpartition("/")
        name = OPERATIONS.get((base + "/", operation))
        if name is not None:
            return name, topic
    raise Unroutable(topic)


def _error_reply(error: ArrowheadError, origin: str, trace_id: str | None, receiver: str | None,
                 topic: str, qos: int, correlation: bytes | None) -> Reply:
    error.with_origin(origin)
    template = MqttResponseTemplate(status=error.status, traceId=trace_id, receiver=receiver, payload=error.body())
    return Reply(topic, qos, _encode(template), correlation)


class MqttDispatcher:
    """Decode → authenticate → authorise → operation → response template."""

    def __init__(self, operations: Operations, access: MqttAccess, prefix: str,
                 reply_rule: ReplyTopicRule | None = None) -> None:
        self.operations = operations
        self.access = access
        self.prefix = prefix
        self.reply_rule = reply_rule or ReplyTopicRule()  # mqtt_reply_topic_prefix (MqttServer.from_url)
        self.unparseable = 0  # messages dropped because no reply could be addressed
        self.refused_reply_topics = 0  # not executed: nothing can be published to the reply topic
        self.disallowed_reply_topics = 0  # not executed: the reply topic is outside the allowed prefix

    async def handle(self, topic: str, body: bytes, response_topic_property: str | None = None,
                     correlation_data: bytes | None = None) -> Reply | None:
        """One request message → the reply to publish, or None when nobody can be answered."""
        try:
            name, origin = route(topic, self.prefix)
        except Unroutable:
            self.unparseable += 1
            log.warning("message on unserved topic %s dropped", shown(topic))
            return None
        try:
            template = _template_decoder.decode(body)
        # RecursionError: nesting deeper than Python's limit; UnicodeDecodeError: invalid UTF-8 inside a string
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as error:
            return self._unparseable(body, origin, error, response_topic_property, correlation_data)

        response_topic = template.responseTopic
        if response_topic is None or not response_topic.strip():  # blank = not given: use the MQTT 5 property
            response_topic = response_topic_property
        qos = template.qosRequirement if template.qosRequirement is not None else 0
        if not response_topic or not response_topic.strip():
            log.info("request on %s has no responseTopic: it is handled, but nobody gets a reply", topic)
        elif self._refuses_reply_topic(response_topic, topic, template.traceId):
            return None
        if qos not in (0, 1, 2):
            return self._reply_or_none(
                _error_reply(invalid(f"Unknown MQTT QoS value: {qos}"), origin, template.traceId, None,
                             response_topic or "", 0, correlation_data))
        try:
            requester = self._authenticate(template.authentication, topic, MqttRequest(body, response_topic))
        except ArrowheadError as error:
            return self._reply_or_none(
                _error_reply(error, origin, template.traceId, None, response_topic or "", qos, correlation_data))
        try:
            if name != "echo":
                authorize_management(requester, self.access.policy, self.access.whitelist)
            result = await self._dispatch(name, requester, template)
        except ArrowheadError as error:
            return self._reply_or_none(_error_reply(error, origin, template.traceId, requester.name,
                                                    response_topic or "", qos, correlation_data))
        except Exception:
            log.exception("unexpected error handling %s", topic)
            internal = ArrowheadError("Internal server error", ExceptionType.INTERNAL_SERVER_ERROR)
            return self._reply_or_none(_error_reply(internal, origin, template.traceId, requester.name,
                                                    response_topic or "", qos, correlation_data))
        payload = "" if result.payload is None else result.payload
        template_out = MqttResponseTemplate(
            status=result.status, traceId=template.traceId, receiver=requester.name, payload=payload
        )
        return self._reply_or_none(Reply(response_topic or "", qos, _encode(template_out), correlation_data))

    @staticmethod
    def _reply_or_none(reply: Reply) -> Reply | None:
        return reply if reply.topic.strip() else None

    def _unparseable(self, body: bytes, origin: str, error: msgspec.DecodeError | UnicodeDecodeError | RecursionError,
                     response_topic_property: str | None, correlation_data: bytes | None) -> Reply | None:
        """DECISIONS 13: answer 400 where a response topic can still be read; otherwise count and log."""
        response_topic, trace_id = response_topic_property, None
        try:
            partial = _lenient_decoder.decode(body)
            if isinstance(partial.responseTopic, str) and partial.responseTopic.strip():
                response_topic = partial.responseTopic
            if isinstance(partial.traceId, str):
                trace_id = partial.traceId
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            pass
        if not response_topic or not response_topic.strip():
            self.unparseable += 1
            log.warning("unparseable request on %s dropped (no readable responseTopic): %s", origin, shown(str(error)))
            return None
        if self._refuses_reply_topic(response_topic, origin, trace_id):
            return None
        reply = invalid(f"Could not parse request. Reason: {error}")
        return _error_reply(reply, origin, trace_id, None, response_topic, 0, correlation_data)

    def _refuses_reply_topic(self, reply_topic: str, topic: str, trace_id: str | None) -> bool:
        """Count and log a reply topic the request must not run with (see the module doc)."""
        problem = reply_topic_problem(reply_topic)
        if problem is None and self.reply_rule.allows(reply_topic):
            return False
        if problem is None:
            self.disallowed_reply_topics += 1
            problem = f"is outside the allowed reply-topic prefix {self.reply_rule.prefix!r}"
        else:
            self.refused_reply_topics += 1
        log.warning("request on %s not executed and not answered: its reply topic %s %s (traceId %s)",
                    topic, shown(reply_topic), problem, shown(trace_id))
        return True

    def _authenticate(self, authentication: str | None, topic: str, request: MqttRequest) -> Requester:
        if self.access.certificate is None:
            return authenticate_mqtt(authentication)
        return authenticate_mqtt_certificate(authentication, topic, self.access.certificate, datetime.now(UTC),
                                             request)

    async def _dispatch(self, name: str, requester: Requester, template: MqttRequestTemplate) -> Result:
        ops = self.operations
        raw = bytes(template.payload) or None
        if name == "echo":
            return Result(200, ECHO_REPLY)
        if name == "lock_remove":
            owner = (template.params or {}).get("owner")
            return await ops.lock_remove(requester, owner, decode_payload(raw, _id_list))
        if name == "store_remove":
            return await ops.store_remove(requester, decode_payload(raw, _id_list))
        operation = getattr(ops, name)
        result: Result = await operation(requester, raw)
        return result
