"""The Arrowhead API layer shared by HTTP and MQTT (docs/ARROWHEAD-REFERENCE.md, docs/DECISIONS.md).

Owns: the msgspec wire schemas (`schemas.py`), field, name, instant, UUID and paging rules with the
reference's exact messages (`fields`, `names`, `instants`, `uuids`, `pagination`), request validation
and normalisation per service (`lock_requests`, `store_requests`), the seven operations (`operations.py`:
one actor message each), the error model (`errors.py`), the caller's identity type (`requester.py`) and
the MQTT reply-topic rules (`topics.py`).

May import: actors/ (the operations' one message), the standard library, msgspec. Nothing else of
transports/: the same request must give the same answer and error text on every transport, so nothing
here knows which one it came from. Pure functions throughout, unit-tested without sockets.
"""
