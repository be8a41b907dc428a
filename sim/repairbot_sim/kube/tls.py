"""The emulated API server's serving certificate: a fresh self-signed one per server.

A real kube-apiserver serves only HTTPS, and clients act on that: client-go
(kubectl) sends a kubeconfig's bearer token only over TLS
(kubernetes/kubectl#744), so a plain-HTTP emulator would see kubectl as
``system:anonymous``. The certificate is made with PyPI's ``cryptography``
(an EC P-256 key, so no system tool is needed), valid for 127.0.0.1 and
localhost, and written to a private temporary directory; kubeconfigs carry it as
``certificate-authority-data``, raw HTTP callers pass :attr:`ca_file` to verify.
"""

from __future__ import annotations

import ipaddress
import shutil
import ssl
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["ServingCert"]


@dataclass(frozen=True)
class ServingCert:
    directory: Path
    cert_file: Path
    key_file: Path

    @property
    def ca_file(self) -> Path:
        """The certificate is its own authority: trust this file to verify the server."""
        return self.cert_file

    @property
    def ca_pem(self) -> bytes:
        return self.cert_file.read_bytes()

    @classmethod
    def generate(cls) -> ServingCert:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "repairbot-sandbox-apiserver")])
        now = datetime.now(UTC)
        usage = x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=False, encipher_only=False, decipher_only=False,
        )  # fmt: skip
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .sign(key, hashes.SHA256())
        )
        directory = Path(tempfile.mkdtemp(prefix="repairbot-kubeapi-"))
        cert_file, key_file = directory / "apiserver.crt", directory / "apiserver.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_file.chmod(0o600)
        return cls(directory, cert_file, key_file)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
