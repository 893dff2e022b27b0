"""Single-owner state: each piece (locks; store rules) is owned by one trio task fed by a mailbox, with
sorted indexes that fit the queries (docs/ARCHITECTURE.md).

Owns: the actor runtime (`runtime.py`: mailbox, durable replies), the domain records and events
(`records.py`), the tables and their indexes (`locks.py`, `store.py`, `rule_indexes.py`, `bulk_index.py`),
the actors (`lock_actor.py`, `store_actor.py`), undo of changes the log lost (`rollback.py`), snapshots
(`snapshots.py`, `snapshot_capture.py`, `capture_walk.py`) and the clock.

May import: wal/ and the standard library. Never transports/ or bench/: an actor does not know who sends it
messages.
"""
