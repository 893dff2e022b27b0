"""The MQTT ceiling our numbers are measured against.

`python -m bench.mqtt_echo --port 1883` is a bare echo responder built on the service's own MQTT
client (`transports.mqtt.session.MqttSession`, paho-mqtt driven by trio) with the service's session
settings: it subscribes to every request topic the service serves and answers each request with a
fixed small JSON reply on the request's `responseTopic`. No decoding beyond that topic, no
authentication, no actor, no log — what the transport costs before any lockstore code runs.

`--raw` answers through the load generator's minimal MQTT codec on a plain trio socket instead of
paho: driving it shows how fast the *client* and the broker go on their own.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import msgspec
import trio

from bench.mqtt_codec import PUBLISH, RawMqtt, encode_publish, parse_publish
from transports.mqtt.dispatch import request_topics
from transports.mqtt.session import MessageProperties, MqttSession, MqttSettings

REPLY = b'{"status":200,"payload":"Got it!"}'


class _Addressed(msgspec.Struct):
    responseTopic: str | None = None
    qosRequirement: int | None = None


_decode = msgspec.json.Decoder(_Addressed).decode


def reply_address(body: bytes, properties: MessageProperties | None) -> tuple[str, int] | None:
    """(response topic, QoS) of a request template, as the service reads them; None if unanswerable."""
    try:
        template = _decode(body)
    except msgspec.DecodeError:
        return None
    topic = template.responseTopic or (properties.response_topic if properties else None)
    if not topic:
        return None
    qos = template.qosRequirement if template.qosRequirement in (0, 1, 2) else 0
    return topic, qos


async def serve_session(settings: MqttSettings, workers: int) -> None:
    session = MqttSession(settings)

    async def answer() -> None:
        async for message in session:
            address = reply_address(message.payload, message.properties)
            if address is not None:
                await session.publish(address[0], REPLY, address[1])

    async with trio.open_nursery() as nursery:
        await nursery.start(session.run)
        print(f"echo answering through {settings.host}:{settings.port}", file=sys.stderr, flush=True)
        for _ in range(workers):
            nursery.start_soon(answer)


async def serve_raw(host: str, port: int, topics: list[str]) -> None:
    """One connection; every packet that arrived in one read is answered with one write."""
    conn = await RawMqtt.open(host, port, f"bench-raw-echo-{os.getpid()}", [(topic, 0) for topic in topics])
    print(f"raw echo answering through {host}:{port}", file=sys.stderr, flush=True)
    try:
        while True:
            if not conn.pending:
                await conn.fill()
            out = []
            while conn.pending:
                first, body = conn.pending.popleft()
                if first >> 4 == PUBLISH:
                    address = reply_address(parse_publish(first, body)[1], None)
                    if address is not None:
                        out.append(encode_publish(address[0], REPLY))
            if out:
                await conn.stream.send_all(b"".join(out))
    finally:
        await conn.aclose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.mqtt_echo", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--prefix", default="arrowhead/serviceorchestration",
                        help="topic prefix, as the service's --mqtt-topic-prefix")
    parser.add_argument("--workers", type=int, default=1,
                        help="tasks taking messages from the session (the service uses 32; default 1: bare)")
    parser.add_argument("--protocol", choices=["3.1.1", "5"], default="5", help="as the service (default 5)")
    parser.add_argument("--raw", action="store_true", help="answer with the benchmark's own codec, not paho")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    topics = request_topics(args.prefix)
    try:
        if args.raw:
            trio.run(serve_raw, args.host, args.port, topics)
        else:
            # The service's session settings (transports/mqtt/server.py MqttServer.from_url, config defaults).
            # A client id of its own: the broker drops a connection whose id connects again elsewhere.
            settings = MqttSettings(host=args.host, port=args.port, client_id=f"lockstore-echo-{os.getpid()}",
                                    keepalive=30, protocol=args.protocol, max_buffered=256,
                                    subscriptions=tuple((topic, 1) for topic in topics))
            trio.run(serve_session, settings, args.workers)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
