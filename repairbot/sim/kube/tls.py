"""The emulated API server's serving certificate: a fresh self-signed one per server.

A real kube-apiserver serves only HTTPS, and clients act on that: client-go
(kubectl) sends a kubeconfig's bearer token only over TLS
(kubernetes/kubectl#744), so a plain-HTTP emulator would see kubectl as
``system:anonymous``. The certificate is made with the ``openssl`` tool (no
Python crypto dependency), valid for 127.0.0.1 and localhost, and written to
a private temporary directory; kubeconfigs carry it as
``certificate-authority-data``, raw HTTP callers pass :attr:`ca_file` to verify.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

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
        openssl = shutil.which("openssl")
        if openssl is None:
            raise RuntimeError(
                "the emulated API server serves HTTPS and needs the openssl tool to make its certificate"
            )
        directory = Path(tempfile.mkdtemp(prefix="repairbot-kubeapi-"))
        cert, key = directory / "apiserver.crt", directory / "apiserver.key"
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", "30", "-subj", "/CN=repairbot-sandbox-apiserver",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,digitalSignature,keyCertSign"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        return cls(directory, cert, key)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
