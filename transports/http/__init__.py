"""The HTTP edge: bytes in, one call into transports/api/, bytes out.

May import: transports/api/, transports/config/, transports/security/. Not transports/mqtt/ nor
transports/observability/ (which wraps this edge from above).
"""
