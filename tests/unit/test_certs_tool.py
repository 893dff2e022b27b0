"""`lockstore certs`: the throw-away CA and certificates a newcomer tries HTTPS with."""

from __future__ import annotations

import ipaddress
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from transports.cli import main
from transports.security.certificates import CertificateIdentity, ProfileType, identity_of
from transports.security.certs_tool import CertsError, write_bundle

FILES = ["ca.key", "ca.pem", "operator.key", "operator.pem", "server.key", "server.pem", "system.key", "system.pem"]


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_cli_writes_an_arrowhead_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "certs"
    assert main(["certs", "--out", str(out), "--days", "7"]) == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == FILES
    assert f"--tls-cert {out}/server.pem" in printed and "curl --cacert" in printed
    for key in ("ca.key", "server.key", "system.key", "operator.key"):
        assert (out / key).stat().st_mode & 0o777 == 0o600
    ca, server, system, operator = (load(out / f"{n}.pem") for n in ("ca", "server", "system", "operator"))
    assert identity_of(server.subject) == CertificateIdentity(
        "DynamicServiceOrchestration.TestCloud.Company.arrowhead.eu", ProfileType.SYSTEM)
    assert identity_of(system.subject) == CertificateIdentity(
        "TemperatureManager.TestCloud.Company.arrowhead.eu", ProfileType.SYSTEM)
    assert identity_of(operator.subject) == CertificateIdentity("Operator.TestCloud.Company.arrowhead.eu", ProfileType.OPERATOR)
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "TestCloud.Company.arrowhead.eu"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for leaf in (server, system, operator):
        leaf.verify_directly_issued_by(ca)
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(usages)
        assert leaf.not_valid_after_utc - datetime.now(UTC) < timedelta(days=7, minutes=1)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "dynamicserviceorchestration.testcloud.company.arrowhead.eu"} <= set(san.get_values_for_type(x509.DNSName))
    assert {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")} <= set(san.get_values_for_type(x509.IPAddress))


def test_openssl_accepts_the_chain(tmp_path: Path) -> None:
    """An independent verifier: `openssl verify` against the CA, for client and server purposes."""
    bundle = write_bundle(tmp_path)
    for leaf, purpose in ((bundle.server[0], "sslserver"), (bundle.system[0], "sslclient"), (bundle.operator[0], "sslclient")):
        result = subprocess.run(["openssl", "verify", "-purpose", purpose, "-CAfile", str(bundle.ca), str(leaf)],
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_names_and_hosts_are_configurable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certs", "--out", str(tmp_path), "--cloud", "Plant", "--organization", "Acme", "--system", "Robot",
                 "--operator", "Alice", "--server-name", "Orchestrator", "--host", "lockstore.local"]) == 0
    server = load(tmp_path / "server.pem")
    assert server.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Orchestrator.Plant.Acme.arrowhead.eu"
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "lockstore.local" in san.get_values_for_type(x509.DNSName)
    assert not san.get_values_for_type(x509.IPAddress)  # --host replaces the defaults
    assert "CN=Alice.Plant.Acme.arrowhead.eu" in capsys.readouterr().out
    assert load(tmp_path / "system.pem").subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Robot.Plant.Acme.arrowhead.eu"


def test_existing_files_are_kept_unless_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_bundle(tmp_path)
    before = (tmp_path / "ca.pem").read_bytes()
    with pytest.raises(CertsError, match=r"already holds ca\.pem"):
        write_bundle(tmp_path)
    assert main(["certs", "--out", str(tmp_path)]) == 1
    assert "use --force" in capsys.readouterr().err
    assert (tmp_path / "ca.pem").read_bytes() == before
    assert main(["certs", "--out", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "ca.pem").read_bytes() != before


def test_unwritable_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CertsError, match="cannot create"):
        write_bundle(blocker / "sub")
