"""HTTPS and MQTT hold client chains to one profile: for every attacker's chain (tests/certs.py), OpenSSL,
with the server context the service really uses (transports/security/tls.py), and the MQTT path validator
(transports/security/client_chains.py) reach the same verdict. The TLS handshake runs in memory (ssl.MemoryBIO);
tests/mqtt/test_certificate_parity.py does the same against the running service."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.certs import ChainCase, chain_cases
from transports.security.certificates import ProfileType, TrustStore, UntrustedCertificate
from transports.security.certs_tool import arrowhead_cn, issue, make_ca
from transports.security.tls import server_context

CA = make_ca()
SERVER = issue(CA, arrowhead_cn("DynamicServiceOrchestration"), ProfileType.SYSTEM, hosts=("localhost",))


def openssl_accepts(case: ChainCase, directory: Path) -> bool:
    """One in-memory TLS handshake: the service's server context against a client presenting the chain."""
    (directory / "ca.pem").write_bytes(CA.certificate_pem())
    (directory / "server.pem").write_bytes(SERVER.certificate_pem())
    (directory / "server.key").write_bytes(SERVER.key_pem())
    server = server_context(str(directory / "server.pem"), str(directory / "server.key"), str(directory / "ca.pem"),
                            "required")
    presented = case.write(directory)
    client = ssl.create_default_context(cafile=str(directory / "ca.pem"))
    client.load_cert_chain(presented.cert, presented.key)
    to_server, to_client, server_outgoing, client_outgoing = (ssl.MemoryBIO() for _ in range(4))
    server_end = server.wrap_bio(to_server, server_outgoing, server_side=True)
    client_end = client.wrap_bio(to_client, client_outgoing, server_hostname="localhost")
    client_done = server_done = False
    for _ in range(10):
        try:
            if not client_done:
                client_end.do_handshake()
                client_done = True
        except ssl.SSLWantReadError:
            pass
        to_server.write(client_outgoing.read())
        try:
            if not server_done:
                server_end.do_handshake()
                server_done = True
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLCertVerificationError:
            return False
        to_client.write(server_outgoing.read())
        if client_done and server_done:
            return True
    raise AssertionError("the in-memory handshake did not finish")


def mqtt_accepts(case: ChainCase) -> bool:
    try:
        TrustStore([CA.certificate]).verify([item.certificate for item in case.chain], datetime.now(UTC))
    except UntrustedCertificate:
        return False
    return True


@pytest.mark.parametrize("case", chain_cases(CA), ids=lambda case: case.name)
def test_https_and_mqtt_agree(case: ChainCase, tmp_path: Path) -> None:
    """Accepted cases show the handshake can succeed, refused ones that it can fail."""
    assert openssl_accepts(case, tmp_path) is case.accepted
    assert mqtt_accepts(case) is case.accepted
