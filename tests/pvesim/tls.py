"""Self-made certificate authority and server certificate for the simulator's HTTPS listener.

The CA and a server certificate for ``127.0.0.1``/``localhost`` (plus the bind address) are
written into the state directory. Clients verify TLS with the CA file, exactly as they would
with a lab's ``pve-root-ca.pem``. Existing files are reused: the CA as long as it is valid for
another 30 days, so a CA file handed to clients stays good across restarts (the sandbox keeps it
in ``.cache/sandbox``), and the server certificate while it is signed by that CA and covers the
address; otherwise a new server certificate is issued by the same CA.
"""

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILE = "pve-root-ca.pem"
CA_KEY_FILE = "pve-root-ca.key"
CERT_FILE = "pve-ssl.pem"
KEY_FILE = "pve-ssl.key"


def _write_key(path, key):
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)


def _names(bind):
    dns = ["localhost"]
    ips = {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
    try:
        ips.add(ipaddress.ip_address(bind))
    except ValueError:
        dns.append(bind)
    return dns, sorted(ips, key=str)


def _cert_covers(cert_path, bind, ca_cert):
    try:
        cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        cert.verify_directly_issued_by(ca_cert)
    except (OSError, ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
        return False
    if cert.not_valid_after_utc < datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1):
        return False
    dns, ips = _names(bind)
    return set(dns) <= set(san.get_values_for_type(x509.DNSName)) and set(ips) <= set(
        san.get_values_for_type(x509.IPAddress)
    )


def _load_ca(ca_file, ca_key_file):
    """The existing CA ``(certificate, key)`` when both files are usable, else None."""
    try:
        cert = x509.load_pem_x509_certificate(Path(ca_file).read_bytes())
        key = serialization.load_pem_private_key(Path(ca_key_file).read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if cert.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo) != \
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo):
        return None
    if cert.not_valid_after_utc < datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30):
        return None
    return cert, key


def _new_ca(now):
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "Proxmox Virtual Environment (pvesim)"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "pvesim"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PVE Cluster Manager CA"),
    ])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return ca_cert, ca_key


def ensure_certificates(state_dir, bind="127.0.0.1"):
    """Create (or reuse) the CA and server certificate in ``state_dir``; return their paths.

    Returns a dict with ``ca_file``, ``cert_file`` and ``key_file``.
    """
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: state_dir / file for name, file in
             (("ca_file", CA_FILE), ("ca_key", CA_KEY_FILE), ("cert_file", CERT_FILE), ("key_file", KEY_FILE))}
    result = {k: str(v) for k, v in paths.items() if k != "ca_key"}
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    ca = _load_ca(paths["ca_file"], paths["ca_key"])
    if ca is None:
        ca = _new_ca(now)
        _write_key(paths["ca_key"], ca[1])
        paths["ca_file"].write_bytes(ca[0].public_bytes(serialization.Encoding.PEM))
    elif paths["key_file"].exists() and _cert_covers(paths["cert_file"], bind, ca[0]):
        return result
    ca_cert, ca_key = ca

    key = ec.generate_private_key(ec.SECP256R1())
    dns, ips = _names(bind)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.COMMON_NAME, "pve-1.ailab.lan"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PVE Cluster Node"),
        ]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=700))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns] + [x509.IPAddress(ip) for ip in ips]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(paths["key_file"], key)
    paths["cert_file"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return result


def fingerprint(cert_file):
    """Return the SHA-256 fingerprint of a PEM certificate in PVE's ``AA:BB:..`` notation."""
    cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
