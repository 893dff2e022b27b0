"""Fixtures for the ServiceRegistry tests: a double per test, and certificates for the TLS ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.certs import CertSet, Pair, make_cert_set
from tests.mqtt.conftest import shared_broker  # noqa: F401 (a fixture: a real mosquitto for the MQTT case)
from tests.registry.sr_double import SrDouble, TlsFiles
from transports.security.certificates import ProfileType
from transports.security.certs_tool import arrowhead_cn, issue

HEADERS = {"Authorization": "Bearer SYSTEM//Alpha"}


@pytest.fixture
def certs(tmp_path: Path) -> CertSet:
    return make_cert_set(tmp_path / "certs")


def registry_tls(certs: CertSet) -> TlsFiles:
    """The ServiceRegistry's own certificate, from the local cloud's CA, valid for 127.0.0.1."""
    issued = issue(certs.ca_issued, arrowhead_cn("ServiceRegistry"), ProfileType.SYSTEM,
                   hosts=("localhost", "127.0.0.1"))
    pair = Pair(certs.directory / "sr.pem", certs.directory / "sr.key")
    pair.cert.write_bytes(issued.certificate_pem())
    pair.key.write_bytes(issued.key_pem())
    return TlsFiles(pair.cert, pair.key, certs.ca)


@pytest.fixture
def sr() -> Iterator[SrDouble]:
    """A declared-policy ServiceRegistry on plain HTTP."""
    with SrDouble() as double:
        yield double


@pytest.fixture
def sr_tls(certs: CertSet) -> Iterator[SrDouble]:
    """A certificate-policy ServiceRegistry on HTTPS; client certificates optional (so 401 can be seen)."""
    with SrDouble(policy="certificate", tls=registry_tls(certs), client_auth="optional") as double:
        yield double
