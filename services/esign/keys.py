"""Who signs with what: one signer interface, a development PKI in files, keys in a PKCS#11 token.

:class:`KeyStore` is the one interface the signing code sees: ``signer_for(identity)`` gives a pyHanko
``Signer`` for a person (``person:<sub>``, the leader's own signature) or an organisation
(``org:<unit code>``, the seal), and ``trust_roots()`` the roots a verifier chains to.

* :class:`FileKeyStore` — development. A local test PKI created on first run under ``ESIGN_PKI_DIR``:
  the root "MOTCUA TEST ROOT", an organisation certificate per issuing unit, a person certificate per
  signer (digitalSignature + nonRepudiation), a timestamping certificate for the test TSA. Every
  private key is PKCS#8, encrypted with ``ESIGN_KEY_PASSPHRASE`` from the environment.
* :class:`Pkcs11KeyStore` — production-like. The private keys live in a PKCS#11 token (SoftHSM2 in
  tests; a real HSM or USB token differs only in the module path and PIN); the certificates, which are
  public, are issued by the same CA and kept as files.
* Remote signing (Cloud Signature Consortium API): pyHanko's ``CSCSigner`` is another ``Signer``; a
  store that returns one from ``signer_for`` is all it takes (docs/services.md, "Signatures").

A private key never leaves this module: no log line, event or response carries one.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.sign.general import get_pyca_cryptography_hash
from pyhanko.sign.signers import Signer, SimpleSigner
from pyhanko_certvalidator.registry import SimpleCertificateStore
from pyhanko_certvalidator.util import process_pss_params

from shared import clock

ROOT_NAME = "MOTCUA TEST ROOT"
ALGORITHMS = ("rsa-pss", "ecdsa-p256")
_IDENTITY = re.compile(r"^(person|org):[A-Za-z0-9@._+-]{1,120}$")


class KeyUnavailable(Exception):
    """A key or certificate that cannot be had; the message names which, never the key."""


class KeyStore(Protocol):
    """The signer interface: every way of holding keys answers these three."""

    def signer_for(self, identity: str, display_name: str | None = None) -> Signer: ...

    def trust_roots(self) -> list[asn1_x509.Certificate]: ...

    def certificate(self, identity: str) -> asn1_x509.Certificate: ...


def check_identity(identity: str) -> str:
    if not _IDENTITY.match(identity):
        raise KeyUnavailable(f"not a signer identity: {identity!r} (person:<sub> or org:<unit>)")
    return identity


def _file_stem(identity: str) -> str:
    kind, _, name = identity.partition(":")
    return f"{kind}-{re.sub(r'[^A-Za-z0-9._-]', '_', name)}"


def _new_key(algorithm: str):
    if algorithm == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str, organisation: str = "MOTCUA TEST") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def to_asn1_cert(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


@dataclass(frozen=True)
class Issued:
    certificate: x509.Certificate
    key: object  # a cryptography private key, kept in memory only


class DevelopmentPki:
    """The development CA on disk; creates what is missing, never overwrites what exists."""

    def __init__(self, folder: str | Path, passphrase: str, algorithm: str = "rsa-pss") -> None:
        if not passphrase:
            raise KeyUnavailable("ESIGN_KEY_PASSPHRASE is empty: the test PKI's keys are encrypted with it")
        if algorithm not in ALGORITHMS:
            raise KeyUnavailable(f"ESIGN_KEY_ALGORITHM must be one of {', '.join(ALGORITHMS)}")
        self.folder = Path(folder)
        self.passphrase = passphrase.encode()
        self.algorithm = algorithm
        self._lock = threading.Lock()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.root = self._root()

    # -- files -----------------------------------------------------------------------------------------
    def _paths(self, stem: str) -> tuple[Path, Path]:
        return self.folder / f"{stem}.pem", self.folder / f"{stem}.key.pem"

    def _write(self, stem: str, issued: Issued) -> None:
        cert_path, key_path = self._paths(stem)
        encrypted = issued.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self.passphrase),
        )
        key_path.touch(mode=0o600)
        key_path.write_bytes(encrypted)
        cert_path.write_bytes(issued.certificate.public_bytes(serialization.Encoding.PEM))

    def _read(self, stem: str) -> Issued | None:
        cert_path, key_path = self._paths(stem)
        if not cert_path.exists():
            return None
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        try:
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=self.passphrase)
        except (ValueError, TypeError) as exc:
            raise KeyUnavailable(f"cannot decrypt {key_path.name}: wrong ESIGN_KEY_PASSPHRASE?") from exc
        return Issued(cert, key)

    def read_certificate(self, stem: str) -> x509.Certificate | None:
        cert_path, _ = self._paths(stem)
        if not cert_path.exists():
            return None
        return x509.load_pem_x509_certificate(cert_path.read_bytes())

    # -- issuing ---------------------------------------------------------------------------------------
    def _root(self) -> Issued:
        with self._lock:
            existing = self._read("root")
            if existing is not None:
                return existing
            key = _new_key(self.algorithm)
            name = _name(ROOT_NAME)
            now = clock.now()
            cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(days=1))
                .not_valid_after(now + timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=False,
                        content_commitment=False,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        key_cert_sign=True,
                        crl_sign=True,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256())
            )
            issued = Issued(cert, key)
            self._write("root", issued)
            return issued

    def issue(self, public_key, common_name: str, organisation: str, *, timestamping: bool = False):
        """A certificate from the test root for ``public_key`` (signing, or timestamping for the TSA)."""
        now = clock.now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, organisation))
            .issuer_name(self.root.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=825))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=not timestamping,  # nonRepudiation
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.root.key.public_key()),
                critical=False,
            )
        )
        if timestamping:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
            )
        return builder.sign(self.root.key, hashes.SHA256())

    def obtain(self, identity: str, display_name: str | None = None) -> Issued:
        """The key and certificate of an identity, issued on first use (``tsa`` for the test TSA)."""
        stem = "tsa" if identity == "tsa" else _file_stem(check_identity(identity))
        with self._lock:
            existing = self._read(stem)
            if existing is not None:
                return existing
            key = _new_key(self.algorithm)
            kind, _, name = identity.partition(":")
            if identity == "tsa":
                cert = self.issue(key.public_key(), "MOTCUA TEST TSA", "MOTCUA TEST", timestamping=True)
            elif kind == "org":
                cert = self.issue(key.public_key(), display_name or f"Đơn vị {name}", f"Đơn vị {name}")
            else:
                cert = self.issue(key.public_key(), display_name or name, "MOTCUA TEST")
            issued = Issued(cert, key)
            self._write(stem, issued)
            return issued


def _private_key_info(key) -> asn1_keys.PrivateKeyInfo:
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return asn1_keys.PrivateKeyInfo.load(der)


class LoadedKeySigner(SimpleSigner):
    """pyHanko's ``SimpleSigner`` with the private key parsed once, not at every signature.

    ``SimpleSigner.sign_raw`` parses its key from DER each time, and OpenSSL 3 checks an RSA key's
    consistency at every parse: ≈ 36 ms here, the price of some 45 raw RSA-2048 signatures, paid twice
    per signature (pyHanko's size estimate signs too). The key object is kept instead; what is signed
    and how (the mechanism pyHanko chose: RSA-PSS, PKCS #1 v1.5 or ECDSA) is unchanged.
    """

    def __init__(self, *, private_key, **kwargs) -> None:
        super().__init__(signing_key=_private_key_info(private_key), **kwargs)
        self._private_key = private_key

    def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
        mechanism = self.get_signature_mechanism_for_digest(digest_algorithm)
        name = mechanism["algorithm"].native
        key = self._private_key
        if name == "rsassa_pss" and isinstance(key, rsa.RSAPrivateKey):
            padding, hash_algo = process_pss_params(mechanism["parameters"])
            return key.sign(data, padding, hash_algo)
        if name == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, PKCS1v15(), get_pyca_cryptography_hash(digest_algorithm))
        if name == "ecdsa" and isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(get_pyca_cryptography_hash(digest_algorithm)))
        return super().sign_raw(data, digest_algorithm)


class FileKeyStore:
    """Development keys: the test PKI's encrypted key files, decrypted in memory when signing."""

    def __init__(self, pki: DevelopmentPki) -> None:
        self.pki = pki
        self._signers: dict[str, Signer] = {}

    def signer_for(self, identity: str, display_name: str | None = None) -> Signer:
        signer = self._signers.get(identity)
        if signer is None:
            issued = self.pki.obtain(identity, display_name)
            signer = LoadedKeySigner(
                signing_cert=to_asn1_cert(issued.certificate),
                private_key=issued.key,
                cert_registry=SimpleCertificateStore.from_certs([to_asn1_cert(self.pki.root.certificate)]),
                prefer_pss=True,
            )
            self._signers[identity] = signer
        return signer

    def trust_roots(self) -> list[asn1_x509.Certificate]:
        return [to_asn1_cert(self.pki.root.certificate)]

    def certificate(self, identity: str) -> asn1_x509.Certificate:
        return to_asn1_cert(self.pki.obtain(identity).certificate)


@dataclass(frozen=True)
class Pkcs11Settings:
    module: str  # e.g. /usr/lib/softhsm/libsofthsm2.so
    token_label: str
    user_pin: str


class Pkcs11KeyStore:
    """Keys in a PKCS#11 token, labelled by identity; certificates from the CA, as files.

    A key missing from the token is generated inside it (``extractable`` false, so it never leaves),
    and its certificate issued by the CA: the provisioning a real deployment does once per signer. A key
    already in the token without a certificate on file is certified as it is.
    """

    def __init__(self, settings: Pkcs11Settings, pki: DevelopmentPki) -> None:
        import pkcs11

        self.pki = pki
        self.settings = settings
        self._lib = pkcs11.lib(settings.module)
        try:
            token = self._lib.get_token(token_label=settings.token_label)
        except (pkcs11.NoSuchToken, pkcs11.MultipleTokensReturned) as exc:
            message = f"PKCS#11 token {settings.token_label!r} not found in {settings.module}"
            raise KeyUnavailable(message) from exc
        self._session = token.open(user_pin=settings.user_pin, rw=True)
        self._lock = threading.Lock()
        self._signers: dict[str, Signer] = {}

    def close(self) -> None:
        self._session.close()

    def _ensure_key(self, identity: str, display_name: str | None) -> x509.Certificate:
        import pkcs11
        from pkcs11 import Attribute, KeyType, ObjectClass

        stem = "p11-" + _file_stem(identity)
        cert = self.pki.read_certificate(stem)
        if cert is not None:
            return cert
        label = identity
        found = list(
            self._session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.LABEL: label})
        )
        if found:
            # Provisioned before (another CA, or its certificate lost): certify the key the token holds.
            public = found[0]
        else:
            public, _private = self._session.generate_keypair(
                KeyType.RSA, 2048, label=label, store=True, private_template={Attribute.EXTRACTABLE: False}
            )
        der = pkcs11.util.rsa.encode_rsa_public_key(public)
        public_key = serialization.load_der_public_key(
            asn1_keys.PublicKeyInfo(
                {"algorithm": {"algorithm": "rsa"}, "public_key": asn1_keys.RSAPublicKey.load(der)}
            ).dump()
        )
        kind, _, name = identity.partition(":")
        organisation = f"Đơn vị {name}" if kind == "org" else "MOTCUA TEST"
        cert = self.pki.issue(
            public_key, display_name or (organisation if kind == "org" else name), organisation
        )
        path, _ = self.pki._paths(stem)
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cert

    def signer_for(self, identity: str, display_name: str | None = None) -> Signer:
        from pyhanko.sign.pkcs11 import PKCS11Signer

        check_identity(identity)
        with self._lock:
            signer = self._signers.get(identity)
            if signer is None:
                cert = self._ensure_key(identity, display_name)
                signer = PKCS11Signer(
                    self._session,
                    key_label=identity,
                    signing_cert=to_asn1_cert(cert),
                    ca_chain=[to_asn1_cert(self.pki.root.certificate)],
                    prefer_pss=True,
                )
                self._signers[identity] = signer
        return signer

    def trust_roots(self) -> list[asn1_x509.Certificate]:
        return [to_asn1_cert(self.pki.root.certificate)]

    def certificate(self, identity: str) -> asn1_x509.Certificate:
        return to_asn1_cert(self._ensure_key(check_identity(identity), None))
