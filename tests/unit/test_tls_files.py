"""Start-up checks of the TLS settings: every problem names the setting, the file and what is wrong,
and the CLI prints it as one `lockstore: …` line (exit 2), before the log is touched."""

from __future__ import annotations

import logging
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from tests.certs import CertSet, make_cert_set, shaped
from transports.cli import main
from transports.config.settings import Settings
from transports.security.certificates import ProfileType
from transports.security.certs_tool import issue
from transports.security.tls import TlsConfigError, https_setup, mqtt_client_context


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    return make_cert_set(tmp_path_factory.mktemp("certs"))


def tls(certs: CertSet, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"tls_cert": str(certs.server.cert), "tls_key": str(certs.server.key)}
    values.update(overrides)
    return Settings(**values)


def refused(settings: Settings, *fragments: str) -> None:
    with pytest.raises(TlsConfigError) as caught:
        https_setup(settings)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_https_setup(certs: CertSet) -> None:
    assert https_setup(Settings()) is None  # HTTPS off
    setup = https_setup(tls(certs, tls_ca=str(certs.ca), tls_client_auth="optional", authentication_policy="certificate"))
    assert setup is not None
    assert setup.server_cn == "DynamicServiceOrchestration.TestCloud.Company.arrowhead.eu"
    assert setup.trust is not None and setup.trust.anchors == [certs.ca_issued.certificate]
    assert setup.context.verify_mode == ssl.CERT_OPTIONAL
    assert setup.context.minimum_version == ssl.TLSVersion.TLSv1_2
    required = https_setup(tls(certs, tls_ca=str(certs.ca), tls_client_auth="required"))
    assert required is not None and required.context.verify_mode == ssl.CERT_REQUIRED
    plain = https_setup(tls(certs))
    assert plain is not None and plain.context.verify_mode == ssl.CERT_NONE and plain.trust is None


def test_file_problems(certs: CertSet, tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    refused(tls(certs, tls_cert=str(missing)), f"tls_cert {missing}: cannot read it: No such file or directory")
    refused(tls(certs, tls_key=str(missing)), f"tls_key {missing}: cannot read it")
    refused(tls(certs, tls_cert=str(certs.server.key), tls_key=str(certs.server.cert)),
            f"tls_cert {certs.server.key}: no PEM certificate in it (it holds a private key: swapped with the key file?)")
    refused(tls(certs, tls_key=str(certs.server.cert)), f"tls_key {certs.server.cert}: no PEM private key in it",
            "swapped")
    refused(tls(certs, tls_key=str(certs.system.key)),
            f"tls_key {certs.system.key} does not match tls_cert {certs.server.cert}",
            "CN=DynamicServiceOrchestration.TestCloud.Company.arrowhead.eu")
    refused(tls(certs, tls_cert=str(certs.expired.cert), tls_key=str(certs.expired.key)),
            f"tls_cert {certs.expired.cert}: the certificate CN=Veteran.TestCloud.Company.arrowhead.eu expired on ")
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    refused(tls(certs, tls_cert=str(broken)), f"tls_cert {broken}: not a readable PEM certificate")
    refused(tls(certs, tls_ca=str(missing), tls_client_auth="optional"), f"tls_ca {missing}: cannot read it")


def test_not_yet_valid_and_encrypted_key(certs: CertSet, tmp_path: Path) -> None:
    future = issue(certs.ca_issued, "Later.TestCloud.Company.arrowhead.eu", ProfileType.SYSTEM,
                   not_before=datetime.now(UTC) + timedelta(days=2), not_after=datetime.now(UTC) + timedelta(days=9))
    cert, key = tmp_path / "later.pem", tmp_path / "later.key"
    cert.write_bytes(future.certificate_pem())
    key.write_bytes(future.key_pem())
    refused(tls(certs, tls_cert=str(cert), tls_key=str(key)), "CN=Later.TestCloud.Company.arrowhead.eu is not valid before")
    locked = tmp_path / "locked.key"
    locked.write_bytes(future.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.BestAvailableEncryption(b"secret")))
    refused(tls(certs, tls_cert=str(cert), tls_key=str(locked)), f"tls_key {locked}: the key is password-protected")


def test_expired_ca_file(certs: CertSet, tmp_path: Path) -> None:
    only_expired = tmp_path / "expired-ca.pem"
    only_expired.write_bytes(certs.expired.pem())
    refused(tls(certs, tls_ca=str(only_expired), tls_client_auth="optional"),
            f"tls_ca {only_expired}: the certificate CN=Veteran.TestCloud.Company.arrowhead.eu expired on",
            "no CA certificate in the file is valid now")
    mixed = tmp_path / "mixed-ca.pem"
    mixed.write_bytes(certs.expired.pem() + certs.ca.read_bytes())
    setup = https_setup(tls(certs, tls_ca=str(mixed), tls_client_auth="optional"))
    assert setup is not None and setup.trust is not None and setup.trust.anchors == [certs.ca_issued.certificate]


def test_inconsistent_settings(certs: CertSet, tmp_path: Path) -> None:
    refused(Settings(tls_cert=str(certs.server.cert)), "tls_cert and tls_key go together")
    refused(tls(certs, tls_client_auth="required"), "tls_client_auth 'required' needs tls_ca")
    refused(Settings(tls_client_auth="optional"), "tls_client_auth 'optional' needs HTTPS")
    refused(Settings(authentication_policy="certificate"), "authentication_policy 'certificate' needs HTTPS")
    refused(tls(certs, authentication_policy="certificate"), "authentication_policy 'certificate' needs tls_ca")
    refused(tls(certs, authentication_policy="certificate", tls_ca=str(certs.ca)), "needs tls_client_auth 'optional' or 'required'")
    short = issue(certs.ca_issued, "localhost", ProfileType.SYSTEM)
    cert, key = tmp_path / "short.pem", tmp_path / "short.key"
    cert.write_bytes(short.certificate_pem())
    key.write_bytes(short.key_pem())
    refused(tls(certs, tls_cert=str(cert), tls_key=str(key), authentication_policy="certificate", tls_ca=str(certs.ca),
                tls_client_auth="optional"), f"tls_cert {cert}: authentication_policy 'certificate' needs a server "
            "certificate whose CN is <System>.<Cloud>.<Organization>.<x>.<y>", "its CN is 'localhost'")


def test_mqtt_client_context(certs: CertSet, tmp_path: Path) -> None:
    default = mqtt_client_context(Settings())
    assert default.check_hostname and default.verify_mode == ssl.CERT_REQUIRED
    own = mqtt_client_context(Settings(mqtt_tls_ca=str(certs.ca), mqtt_tls_verify_hostname=False))
    assert not own.check_hostname and own.cert_store_stats()["x509_ca"] == 1  # only the configured CA
    assert own.minimum_version == ssl.TLSVersion.TLSv1_2
    fallback = mqtt_client_context(tls(certs, tls_ca=str(certs.ca)))
    assert fallback.cert_store_stats()["x509_ca"] == 1
    with pytest.raises(TlsConfigError, match="mqtt_tls_cert and mqtt_tls_key go together"):
        mqtt_client_context(Settings(mqtt_tls_cert=str(certs.system.cert)))
    with pytest.raises(TlsConfigError, match=f"mqtt_tls_key {certs.operator.key} does not match mqtt_tls_cert"):
        mqtt_client_context(Settings(mqtt_tls_cert=str(certs.system.cert), mqtt_tls_key=str(certs.operator.key)))
    missing = tmp_path / "nope.pem"
    with pytest.raises(TlsConfigError, match=f"mqtt_tls_ca {missing}: cannot read it"):
        mqtt_client_context(Settings(mqtt_tls_ca=str(missing)))


def test_cli_refuses_to_start_without_traceback(certs: CertSet, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    code = main(["serve", "--data-dir", str(data), "--port", "0", "--tls-cert", str(certs.server.cert),
                 "--tls-key", str(certs.system.key)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("lockstore: refusing to start: tls_key ") and "does not match" in err
    assert "Traceback" not in err
    assert not data.exists()  # nothing was opened
    monkeypatch.setenv("LOCKSTORE_TLS_CERT", str(tmp_path / "gone.pem"))
    monkeypatch.setenv("LOCKSTORE_TLS_KEY", str(certs.server.key))
    assert main(["serve", "--data-dir", str(data), "--port", "0"]) == 2
    assert f"tls_cert {tmp_path / 'gone.pem'}: cannot read it" in capsys.readouterr().err
    monkeypatch.delenv("LOCKSTORE_TLS_CERT")
    monkeypatch.delenv("LOCKSTORE_TLS_KEY")
    assert main(["serve", "--data-dir", str(data), "--mqtt-url", "https://broker"]) == 2
    assert "unsupported MQTT broker URL 'https://broker'" in capsys.readouterr().err
    assert not data.exists()


def test_trust_file_with_a_certificate_that_cannot_issue(certs: CertSet, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """HTTPS and MQTT check chains RFC 5280-strictly: a tls_ca certificate that is no proper CA would
    silently refuse every client it issued, so start-up says which one and why."""
    lax = shaped(certs.ca_issued, "Lax.Company.arrowhead.eu", ProfileType.LOCAL_CLOUD, ca=True, ca_critical=False,
                 key_usage=("digital_signature",), subject_key_id=False)
    trust = tmp_path / "trust.pem"
    trust.write_bytes(certs.ca.read_bytes() + lax.certificate_pem())
    caplog.set_level(logging.WARNING, logger="lockstore.tls")
    setup = https_setup(tls(certs, tls_ca=str(trust), tls_client_auth="optional"))
    assert setup is not None and setup.context.verify_flags & ssl.VERIFY_X509_STRICT
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [f"tls_ca {trust}: certificate CN=Lax.Company.arrowhead.eu is not an RFC 5280 CA "
                        "(BasicConstraints not marked critical; KeyUsage without keyCertSign; no subjectKeyIdentifier): "
                        "client certificates it issued are refused over HTTPS and MQTT"]


def test_request_signature_settings(certs: CertSet) -> None:
    """mqtt_request_signatures needs the certificate policy (the signature is made with the certificate's
    key); the window is 1 to 3600 seconds; each refusal is one line naming the setting."""
    policy = {"tls_ca": str(certs.ca), "tls_client_auth": "optional", "authentication_policy": "certificate"}
    setup = https_setup(tls(certs, **policy, mqtt_request_signatures="required", mqtt_signature_window=10))
    assert setup is not None and setup.trust is not None and setup.trust.request_signatures is not None
    assert setup.trust.request_signatures.window == 10
    off = https_setup(tls(certs, **policy))
    assert off is not None and off.trust is not None and off.trust.request_signatures is None
    refused(Settings(mqtt_request_signatures="required"),
            "mqtt_request_signatures 'required' needs authentication_policy 'certificate'")
    for window in (0, -5, 3601):
        refused(tls(certs, **policy, mqtt_signature_window=window),
                f"mqtt_signature_window {window}: must be 1 to 3600 seconds")


def test_request_signature_setting_on_the_command_line(certs: CertSet, capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    assert main(["serve", "--data-dir", str(tmp_path / "data"), "--mqtt-request-signatures", "required"]) == 2
    assert capsys.readouterr().err.strip() == ("lockstore: invalid setting: mqtt_request_signatures 'required' needs "
                                               "authentication_policy 'certificate' (a request is signed with the "
                                               "key of the certificate in its authentication field)")
