# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificates, kubeconfigs and kubeadm's encrypted certificate upload, with python3-cryptography.

As kubeadm (cmd/kubeadm/app/util/pkiutil): RSA 2048 keys, a self-signed CA valid ten years,
leaf certificates valid one year; the discovery hash is ``sha256:`` + SHA-256 of the CA's
SubjectPublicKeyInfo (cmd/kubeadm/app/util/pubkeypin); uploaded certificates are sealed with
AES-256-GCM, nonce first (cmd/kubeadm/app/util/crypto EncryptBytes).
"""

import base64
import datetime
import hashlib
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID


def new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()


def public_pem(key):
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def load_key(pem):
    return serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, password=None)


def load_cert(pem):
    return x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)


def _name(common_name, organizations=()):
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def make_ca(common_name, days=3650):
    """A self-signed CA: (key PEM, certificate PEM)."""
    key = new_key()
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, True, False, False, True, False, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key_pem(key), cert_pem(cert)


def sign(ca_key, ca_cert, common_name, organizations=(), dns=(), ips=(), server=False, client=True, public_key=None,
         days=365):
    """A leaf certificate signed by the CA; a new key unless ``public_key`` is given: (key PEM or None, cert PEM)."""
    ca_key, ca_cert = load_key(ca_key), load_cert(ca_cert)
    key = None if public_key is not None else new_key()
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    usages = ([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organizations))
        .issuer_name(ca_cert.subject)
        .public_key(public_key if public_key is not None else key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    names = [x509.DNSName(name) for name in dns] + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return (key_pem(key) if key is not None else None), cert_pem(cert)


def make_csr(common_name, organizations=()):
    key = new_key()
    csr = x509.CertificateSigningRequestBuilder().subject_name(_name(common_name, organizations)).sign(
        key, hashes.SHA256()
    )
    return key_pem(key), csr.public_bytes(serialization.Encoding.PEM).decode()


def sign_csr(ca_key, ca_cert, csr_pem):
    """Sign a CSR as kube-controller-manager's csrsigning controller does for kubelet client certificates."""
    csr = x509.load_pem_x509_csr(csr_pem.encode() if isinstance(csr_pem, str) else csr_pem)
    common_name = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    organizations = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return sign(ca_key, ca_cert, common_name, organizations, public_key=csr.public_key())[1]


def subject(cert):
    """(common name, [organizations]) of a certificate."""
    cert = load_cert(cert) if isinstance(cert, (str, bytes)) else cert
    common_name = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    return common_name, [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]


def ca_cert_hash(ca_cert):
    spki = load_cert(ca_cert).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def b64(text):
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def kubeconfig(cluster_name, server, ca, user, cert=None, key=None, token=None):
    """A kubeconfig as kubeadm writes it (certificates embedded)."""
    credentials = {"token": token} if token else {"client-certificate-data": b64(cert), "client-key-data": b64(key)}
    context = f"{user}@{cluster_name}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": {"certificate-authority-data": b64(ca), "server": server}}],
        "contexts": [{"name": context, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": context,
        "preferences": {},
        "users": [{"name": user, "user": credentials}],
    }


def new_certificate_key():
    return os.urandom(32).hex()


def encrypt(key_hex, data):
    """kubeadm's EncryptBytes: AES-GCM with the 32-byte certificate key, nonce || ciphertext."""
    nonce = os.urandom(12)
    return nonce + AESGCM(bytes.fromhex(key_hex)).encrypt(nonce, data.encode(), None)


def decrypt(key_hex, blob):
    """Raise ValueError when the key is wrong or the data was changed."""
    try:
        key = bytes.fromhex(key_hex)
        if len(key) != 32:
            raise ValueError
        return AESGCM(key).decrypt(blob[:12], blob[12:], None).decode()
    except Exception as e:  # cryptography raises InvalidTag
        raise ValueError("error decoding secret data with provided key: cipher: message authentication failed") from e
