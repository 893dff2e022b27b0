"""The MQTT edge: paho-mqtt 2.x driven natively by trio (`session.py`, with its paho subclass in
`paho_client.py`, its bounded receive buffer in `inbox.py` and its types in `session_types.py`), the
worker pool that serves requests (`server.py`), the request/response templates and routing
(`dispatch.py`), and the broker-takeover watch (`watch.py`).

May import: transports/api/, transports/config/, transports/security/. Not transports/http/ nor
transports/observability/ (which observes this edge from above).
"""
