"""Who is asking: the identity policies (`identity.py`: declared `SYSTEM//<Name>`, management policies),
certificate identity (`certificates.py`; MQTT chains through cryptography's RFC 5280 path validator in
`client_chains.py`), opt-in signed MQTT requests (`request_signatures.py`), TLS contexts and their files
(`tls.py`) and the throw-away certificates of `lockstore certs` (`certs_tool.py`).

May import: transports/api/ and transports/config/. Never an edge: HTTP and MQTT call these checks, and
both must accept and refuse the same certificates.
"""
