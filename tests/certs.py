"""Certificates for the TLS tests, made at run time (no private key is ever committed).

One local cloud CA (`TestCloud.Company.arrowhead.eu`) issues the server, a broker, and one client
certificate per case the certificate policy distinguishes; a second, unrelated CA comes from trustme, so
"wrong CA" does not depend on our own generator.
"""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trustme

from transports.certificates import ProfileType
from transports.certs_tool import Issued, arrowhead_cn, issue, make_ca


@dataclass(frozen=True)
class Pair:
    """A certificate and key written to disk."""

    cert: Path
    key: Path

    def pem(self) -> bytes:
        return self.cert.read_bytes()

    def authentication(self) -> str:
        """The MQTT `authentication` field of the certificate policy: Base64 of the PEM."""
        return base64.b64encode(self.pem()).decode()

    def client_context(self, ca: Path) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(ca))
        context.load_cert_chain(self.cert, self.key)
        return context


@dataclass(frozen=True)
class CertSet:
    directory: Path
    ca: Path  # our CA's certificate
    ca_issued: Issued
    server: Pair  # DynamicServiceOrchestration.TestCloud.Company.arrowhead.eu, SANs localhost/127.0.0.1
    broker: Pair  # Broker.TestCloud.Company.arrowhead.eu, SANs localhost/127.0.0.1
    system: Pair  # TemperatureManager, sy
    operator: Pair  # Operator, op
    device: Pair  # SomeDevice, de
    unqualified: Pair  # Anonymous, no dnQualifier
    foreign: Pair  # Intruder.OtherCloud.Company.arrowhead.eu, sy
    expired: Pair  # Veteran, sy, expired yesterday
    impostor: Pair  # TemperatureManager, sy, issued by another CA that has our CA's very name
    other_ca: Path  # an unrelated CA (trustme)
    stranger: Pair  # issued by the unrelated CA

    def client_context(self, pair: Pair | None) -> ssl.SSLContext:
        """A client context trusting our CA, presenting `pair` (or no certificate)."""
        if pair is None:
            return ssl.create_default_context(cafile=str(self.ca))
        return pair.client_context(self.ca)


def _write(directory: Path, stem: str, issued: Issued) -> Pair:
    pair = Pair(directory / f"{stem}.pem", directory / f"{stem}.key")
    pair.cert.write_bytes(issued.certificate_pem())
    pair.key.write_bytes(issued.key_pem())
    pair.key.chmod(0o600)
    return pair


def make_cert_set(directory: Path) -> CertSet:
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    ca = make_ca()
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca.certificate_pem())
    hosts = ("localhost", "127.0.0.1")
    pairs = {
        "server": issue(ca, arrowhead_cn("DynamicServiceOrchestration"), ProfileType.SYSTEM, hosts=hosts),
        "broker": issue(ca, arrowhead_cn("Broker"), ProfileType.SYSTEM, hosts=hosts),
        "system": issue(ca, arrowhead_cn("TemperatureManager"), ProfileType.SYSTEM),
        "operator": issue(ca, arrowhead_cn("Operator"), ProfileType.OPERATOR),
        "device": issue(ca, arrowhead_cn("SomeDevice"), ProfileType.DEVICE),
        "unqualified": issue(ca, arrowhead_cn("Anonymous"), None),
        "foreign": issue(ca, arrowhead_cn("Intruder", cloud="OtherCloud"), ProfileType.SYSTEM),
        "expired": issue(ca, arrowhead_cn("Veteran"), ProfileType.SYSTEM, not_before=now - timedelta(days=30),
                         not_after=now - timedelta(days=1)),
    }
    pairs["impostor"] = issue(make_ca(), arrowhead_cn("TemperatureManager"), ProfileType.SYSTEM)
    written = {stem: _write(directory, stem, issued) for stem, issued in pairs.items()}
    other = trustme.CA()
    other_ca = directory / "other-ca.pem"
    other.cert_pem.write_to_path(str(other_ca))
    stranger_issued = other.issue_cert("stranger.example", common_name=arrowhead_cn("TemperatureManager"))
    stranger = Pair(directory / "stranger.pem", directory / "stranger.key")
    stranger_issued.cert_chain_pems[0].write_to_path(str(stranger.cert))
    stranger_issued.private_key_pem.write_to_path(str(stranger.key))
    return CertSet(directory=directory, ca=ca_path, ca_issued=ca, other_ca=other_ca, stranger=stranger, **written)
