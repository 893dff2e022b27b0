"""Everything between the outside world and the actors: where a request enters, how it is checked, and
how the service is put together. Rooms, lowest first; a room may import the rooms listed before it
(and actors/, wal/), never one below it nor its sibling (tests/unit/test_layers.py checks it):

- `api/`            the Arrowhead API both transports share: wire schemas, validation and normalisation with
                    the reference's messages, the seven operations, the error model. Pure but for the one
                    message each operation sends to an actor.
- `config/`         the one settings object, its per-setting rules and how it is read (file < env < CLI).
- `security/`       who is asking: identity policies, certificate checks, TLS contexts, `lockstore certs`.
- `http/`, `mqtt/`  the two edges: bytes in, one call into `api/`, bytes out. Neither imports the other.
- `observability/`  what operators see: access log, metrics, health, the pages /metrics, /health/*,
                    /openapi.json and /docs, log formatting.
- `service_registry/` joining an Arrowhead local cloud (ServiceRegistry registration).
- this folder's own modules: the composition root (`service.py`: start-up and shutdown order),
  `startup.py` (checks only the machine can answer), the command line (`cli.py`) and its commands
  `status.py` and `admin.py` (check, dump).

A new transport is a new room beside `http/` and `mqtt/` that decodes into `api/` and is wired in
`service.py`.
"""
