"""Opens a client for an endpoint, whatever its kind (the one place that knows every client)."""

from __future__ import annotations

from bench.operations import Client, Endpoint


async def open_client(endpoint: Endpoint) -> Client:
    if endpoint.kind == "http":
        from bench.http_client import HttpClient

        return await HttpClient.open(endpoint)
    if endpoint.kind == "mqtt":
        from bench.mqtt_client import MqttClient

        return await MqttClient.open(endpoint)
    if endpoint.kind == "etcd":
        from bench.etcd_peer import EtcdClient

        return await EtcdClient.open(endpoint)
    raise ValueError(f"unknown endpoint kind {endpoint.kind!r} (http, mqtt, etcd)")
