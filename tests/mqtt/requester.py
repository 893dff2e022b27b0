"""An independent MQTT requester for tests: plain paho-mqtt on its own network thread (not our
session code), publishing request templates and collecting replies from its response topic."""

from __future__ import annotations

import json
import queue
import threading
import uuid
from typing import Any

import paho.mqtt.client as paho
import trio


class Requester:
    def __init__(self, host: str, port: int, protocol: int = paho.MQTTv311, *, response_topic: str | None = None,
                 username: str | None = None, password: str | None = None) -> None:
        self.response_topic = response_topic or f"test/replies/{uuid.uuid4().hex}"
        self.replies: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"req-{uuid.uuid4().hex[:8]}",
                                  protocol=protocol)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_message = lambda _c, _u, message: self.replies.put(message)
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *_args: self.subscribed.set()
        self.client.on_connect = lambda *_args: self.client.subscribe(self.response_topic, qos=2)  # and on reconnect
        self.client.reconnect_delay_set(0.1, 1)
        self.client.connect(host, port)
        self.client.loop_start()
        assert self.subscribed.wait(5), "no SUBACK from the broker"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def send(self, topic: str, template: dict[str, Any] | bytes, **props: Any) -> None:
        body = template if isinstance(template, bytes) else json.dumps(template).encode()
        properties = None
        if props:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            properties = Properties(PacketTypes.PUBLISH)
            for name, value in props.items():
                setattr(properties, name, value)
        self.client.publish(topic, body, qos=1, properties=properties).wait_for_publish(5)

    async def reply(self, timeout: float = 5.0) -> paho.MQTTMessage:
        def get() -> paho.MQTTMessage:
            return self.replies.get(timeout=timeout)

        return await trio.to_thread.run_sync(get)

    async def no_reply(self, wait: float = 0.5) -> bool:
        await trio.sleep(wait)
        return self.replies.empty()

    async def request(self, topic: str, payload: Any = None, *, auth: str = "SYSTEM//Sysop", qos: int | None = 0,
                      params: dict[str, str] | None = None, trace_id: str = "trace-1") -> dict[str, Any]:
        template: dict[str, Any] = {"traceId": trace_id, "authentication": auth, "responseTopic": self.response_topic}
        if qos is not None:
            template["qosRequirement"] = qos
        if params is not None:
            template["params"] = params
        if payload is not None:
            template["payload"] = payload
        self.send(topic, template)
        message = await self.reply()
        body: dict[str, Any] = json.loads(message.payload)
        body["_qos"] = message.qos
        return body
