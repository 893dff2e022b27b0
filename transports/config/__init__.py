"""The settings: one typed object (`settings.py`), one rule per setting (`rules.py`), read from defaults <
TOML file < LOCKSTORE_* environment < command line (`loading.py`), and the broker URL setting's parser
(`broker_url.py`).

May import: transports/api/ (names and topic rules the settings must obey), the pure parsers of actors/etcd/
(`failover.parse_endpoints`: etcd endpoint URLs), the standard library, msgspec.
Imported by everything above it; it never opens a file other than the TOML file, nor a socket.
"""
