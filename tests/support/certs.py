"""
Certificates made by the tests themselves, with C{cryptography}, so that no
test depends on a file or an authority outside the repository.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def make_certificate(
    directory: Path,
    name: str = "server",
    common_name: str = "chatservice test",
) -> tuple[Path, Path]:
    """
    Write a self-signed certificate for C{localhost}, 127.0.0.1 and ::1, and
    its key, as C{NAME.cert.pem} and C{NAME.key.pem} in C{directory}. A
    client that trusts the certificate file itself verifies a connection to
    any of those names. Returns the key's path and the certificate's.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path = directory / f"{name}.key.pem"
    cert_path = directory / f"{name}.cert.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def common_name(pem: bytes) -> str:
    """
    The common name of the certificate in C{pem}, to tell certificates apart.
    """
    certificate = x509.load_pem_x509_certificate(pem)
    (attribute,) = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = attribute.value
    return value if isinstance(value, str) else value.decode()
