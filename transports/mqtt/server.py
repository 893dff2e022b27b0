"""The MQTT edge: one broker session, a fixed pool of worker tasks that take requests from it, hand
them to the dispatcher and publish the replies.

A fixed pool (not a task per message) bounds concurrency and memory: when every worker is busy,
the session's bounded buffer fills and it stops reading the socket — backpressure reaches the
broker instead of piling up here. Many workers mean one slow request does not hold up others.

No single message can stop the service: whatever handling or publishing one message raises ends that
message only (counted, logged). Retained messages are not requests: a retained request would run again
on every (re)subscribe, so they are ignored (counted, logged with how to clear them).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from time import perf_counter
from typing import Literal

import trio

from transports.api.topics import ReplyTopicRule, prefix_setting_problem, shown
from transports.config.broker_url import MqttSettingError, parse_broker_url, uses_tls
from transports.config.rules import share_name
from transports.mqtt.dispatch import MqttDispatcher, Reply, request_topics
from transports.mqtt.session import IncomingMessage, MessageProperties, MqttError, MqttSession, MqttSettings
from transports.mqtt.shared_group import shared_filter

log = logging.getLogger("lockstore.mqtt")

# Called after each request: (topic, reply or None, seconds spent handling it). For metrics and the access log.
RequestHook = Callable[[str, Reply | None, float], None]


class MqttServer:
    def __init__(self, session_settings: MqttSettings, dispatcher: MqttDispatcher, workers: int = 32) -> None:
        self.session = MqttSession(session_settings)
        self.dispatcher = dispatcher
        self.workers = workers
        self.handled = 0
        self.publish_failures = 0
        self.handler_errors = 0
        self.dropped_retained = 0
        self.on_request: RequestHook | None = None
        self._stopping = False
        self._receiving: set[trio.CancelScope] = set()  # workers waiting for a message

    @classmethod
    def from_url(cls, url: str, dispatcher: MqttDispatcher, *, client_id: str | None, username: str | None,
                 password: str | None, keepalive: int, protocol: Literal["5", "3.1.1"] = "5",
                 max_request_bytes: int | None = 1 << 20, reply_topic_prefix: str | None = None,
                 max_buffered: int = 256, workers: int = 32, tls: ssl.SSLContext | None = None,
                 shared_group: str | None = None) -> MqttServer:
        """`tls` is used for mqtts:// URLs (default: the system's CAs, hostname checked), ignored for mqtt://.
        `client_id` None or empty: a unique `lockstore-<host>-<random>`. `reply_topic_prefix` restricts
        where `dispatcher` sends replies; `max_request_bytes` drops bigger requests unread. `shared_group`
        subscribes as `$share/<group>/...`: each request goes to one instance of the group (shared_group.py)."""
        host, port = parse_broker_url(url)
        if max_request_bytes is not None and max_request_bytes < 1:
            raise MqttSettingError(f"mqtt_max_request_bytes must be at least 1, not {max_request_bytes}")
        if reply_topic_prefix is not None:
            problem = prefix_setting_problem(reply_topic_prefix)
            if problem is not None:
                raise MqttSettingError(f"mqtt_reply_topic_prefix {shown(reply_topic_prefix)} {problem}")
            dispatcher.reply_rule = ReplyTopicRule(reply_topic_prefix)
        if shared_group is not None and (problem := share_name(shared_group)) is not None:
            raise MqttSettingError(f"mqtt_shared_group {shown(shared_group)} {problem}")
        if not uses_tls(url):
            tls = None
        elif tls is None:
            tls = ssl.create_default_context()
        settings = MqttSettings(
            host=host, port=port, client_id=client_id or "", username=username, password=password,
            keepalive=keepalive, protocol=protocol, max_buffered=max_buffered, tls=tls,
            subscriptions=tuple((shared_filter(topic, shared_group), 1) for topic in request_topics(dispatcher.prefix)),
            max_message_bytes=max_request_bytes,
        )
        return cls(settings, dispatcher, workers)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until stop(); the broker may come and go meanwhile (the session reconnects)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._run_session)
            async with trio.open_nursery() as pool:
                for _ in range(self.workers):
                    pool.start_soon(self._worker)
                task_status.started()
            # every worker has finished its last request: now say goodbye to the broker
            await self.session.aclose()

    async def _run_session(self) -> None:
        await self.session.run()

    def stop(self) -> None:
        """Take no new requests; the ones being handled are finished and answered first."""
        self._stopping = True
        for scope in self._receiving:
            scope.cancel()

    async def _worker(self) -> None:
        while not self._stopping:
            with trio.CancelScope() as waiting:
                self._receiving.add(waiting)
                try:
                    message = await self.session.receive()
                except trio.EndOfChannel:
                    return
                finally:
                    self._receiving.discard(waiting)
            if waiting.cancelled_caught:
                return
            if message.retain:
                self.dropped_retained += 1
                log.warning("retained message on %s ignored: a request must not be retained (it would run again "
                            "at every subscribe). Clear it with an empty retained message: mosquitto_pub -r -n -t "
                            "'%s'", message.topic, message.topic)
                continue
            await self._serve(message)

    async def _serve(self, message: IncomingMessage) -> None:
        """One request: handle, account, answer. Whatever goes wrong ends this message only."""
        props = message.properties
        started = perf_counter()
        try:
            reply = await self.dispatcher.handle(
                message.topic, message.payload,
                props.response_topic if props else None, props.correlation_data if props else None,
            )
        except Exception:
            # handle() answers every error itself; this is the last line of defence: one bad message
            # must never take the worker pool (and with it the service) down.
            self.handler_errors += 1
            log.exception("unexpected error handling a message on %s; dropped", message.topic)
            reply = None
        self.handled += 1
        if self.on_request is not None:
            try:
                self.on_request(message.topic, reply, perf_counter() - started)
            except Exception:
                log.exception("MQTT request hook failed for a message on %s", message.topic)
        if reply is None:
            return
        properties = MessageProperties(correlation_data=reply.correlation_data) if reply.correlation_data else None
        try:
            await self.session.publish(reply.topic, reply.body, reply.qos, properties=properties)
        except MqttError as error:
            self.publish_failures += 1
            log.warning("reply to %s not published: %s", shown(reply.topic), shown(str(error)))
        except Exception as error:  # e.g. paho's ValueError on a topic it cannot send: this reply only
            self.publish_failures += 1
            log.warning("reply to %s not published: %s: %s", shown(reply.topic), type(error).__name__,
                        shown(str(error)))
