"""nameko dependencies of the e-signature service: its settings, keys, store and timestamper.

``Signing`` builds the use cases' context, :class:`services.esign.service_layer.EsignContext`, once
per process: the signatures with the key store (files or PKCS#11, by ``ESIGN_KEYSTORE``) and the TSA
client (B-T when ``ESIGN_TSA_URL`` is set, B-B otherwise), the content-addressed document store.
``VerifyLimits`` rate-limits the public upload.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from nameko.extensions import DependencyProvider

from services.esign.keys import (
    ALGORITHMS,
    DevelopmentPki,
    FileKeyStore,
    KeyStore,
    Pkcs11KeyStore,
    Pkcs11Settings,
)
from services.esign.pades import REVOCATION_MODES, PadesSignatures, Revocation
from services.esign.service_layer import EsignContext
from services.esign.storage import DocumentStore
from services.esign.tsa import TsaClient
from shared.config import ConfigurationError, Setting, _url, positive_int, validate
from shared.ratelimit import SlidingWindow
from shared.units import UnitRegistry
from shared.workcalendar import WorkingCalendar


def _choice(*allowed: str):
    def parse(value: Any) -> str:
        if str(value) not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, got {value!r}")
        return str(value)

    return parse


def _optional_url(value: Any) -> str | None:
    return None if value in (None, "") else _url(value)


SETTINGS = (
    Setting("ESIGN_KEYSTORE", _choice("files", "pkcs11"), description="where private keys are held"),
    Setting("ESIGN_PKI_DIR", description="folder of the test PKI and the issued certificates"),
    Setting(
        "ESIGN_KEY_PASSPHRASE",
        description="passphrase that encrypts the test PKI's keys at rest (from the environment)",
    ),
    Setting("ESIGN_KEY_ALGORITHM", _choice(*ALGORITHMS), description="key algorithm of issued keys"),
    Setting("ESIGN_PKCS11_MODULE", required=False, description="PKCS#11 module (.so) of the token"),
    Setting("ESIGN_PKCS11_TOKEN", required=False, description="PKCS#11 token label"),
    Setting("ESIGN_PKCS11_PIN", required=False, description="PKCS#11 user PIN"),
    Setting("ESIGN_TSA_URL", _optional_url, required=False, description="RFC 3161 TSA; empty = no timestamp"),
    Setting("ESIGN_STORE_DIR", description="folder of the content-addressed document store"),
    Setting("ESIGN_RETENTION_DAYS", positive_int, description="days a signed document is kept"),
    Setting("ESIGN_PUBLIC_URL", _url, description="public base URL the QR code points to"),
    Setting("ESIGN_PLACE", description="place name printed on result documents"),
    Setting("ESIGN_LEADER_TITLE", description="title above the leader's signature"),
    Setting("ESIGN_VERIFY_MAX_BYTES", positive_int, description="largest PDF the public verifier takes"),
    Setting("ESIGN_VERIFY_PER_MINUTE", positive_int, description="uploads per client address per minute"),
    Setting(
        "ESIGN_REVOCATION_MODE",
        _choice(*REVOCATION_MODES),
        description="OCSP/CRL checking of signers' certificates: hard-fail, soft-fail or require",
        default="hard-fail",
    ),
    Setting(
        "ESIGN_REVOCATION_TIMEOUT_SECONDS",
        positive_int,
        description="timeout of one OCSP or CRL request made while verifying",
        default=10,
    ),
)


def settings_from(config: Mapping[str, Any]) -> dict[str, Any]:
    parsed = validate(config, SETTINGS)
    if parsed["ESIGN_KEYSTORE"] == "pkcs11":
        missing = [
            k for k in ("ESIGN_PKCS11_MODULE", "ESIGN_PKCS11_TOKEN", "ESIGN_PKCS11_PIN") if not parsed[k]
        ]
        if missing:
            raise ConfigurationError(f"ESIGN_KEYSTORE=pkcs11 needs {', '.join(missing)}")
    return parsed


def key_store(parsed: Mapping[str, Any]) -> KeyStore:
    pki = DevelopmentPki(
        parsed["ESIGN_PKI_DIR"], parsed["ESIGN_KEY_PASSPHRASE"], parsed["ESIGN_KEY_ALGORITHM"]
    )
    if parsed["ESIGN_KEYSTORE"] == "pkcs11":
        return Pkcs11KeyStore(
            Pkcs11Settings(
                parsed["ESIGN_PKCS11_MODULE"], parsed["ESIGN_PKCS11_TOKEN"], parsed["ESIGN_PKCS11_PIN"]
            ),
            pki,
        )
    return FileKeyStore(pki)


def build_context(config: Mapping[str, Any]) -> EsignContext:
    parsed = settings_from(config)
    tsa = parsed["ESIGN_TSA_URL"]
    return EsignContext(
        units=UnitRegistry.from_settings(config.get("UNITS_FILE") or None),
        calendar=WorkingCalendar.from_settings(config.get("CALENDAR") or None),
        signatures=PadesSignatures(
            keys=key_store(parsed),
            timestamper=TsaClient(tsa) if tsa else None,
            place=parsed["ESIGN_PLACE"],
            revocation=Revocation(
                mode=parsed["ESIGN_REVOCATION_MODE"],
                timeout_seconds=parsed["ESIGN_REVOCATION_TIMEOUT_SECONDS"],
            ),
        ),
        documents=DocumentStore(parsed["ESIGN_STORE_DIR"]),
        retention=timedelta(days=parsed["ESIGN_RETENTION_DAYS"]),
        public_url=parsed["ESIGN_PUBLIC_URL"],
        place=parsed["ESIGN_PLACE"],
        leader_title=parsed["ESIGN_LEADER_TITLE"],
    )


class Signing(DependencyProvider):
    """``self.signing``: the use cases' :class:`EsignContext` (signatures, documents, unit map)."""

    def setup(self) -> None:
        self.context = build_context(self.container.config)

    def stop(self) -> None:
        if isinstance(self.context.signatures, PadesSignatures):
            self.context.signatures.close()

    def kill(self) -> None:
        self.stop()

    def get_dependency(self, worker_ctx) -> EsignContext:
        return self.context


class VerifyLimits(DependencyProvider):
    """``self.verify_limits``: the upload size limit and the per-client rate limit."""

    def setup(self) -> None:
        parsed = settings_from(self.container.config)
        self.max_bytes = parsed["ESIGN_VERIFY_MAX_BYTES"]
        self.window = SlidingWindow(parsed["ESIGN_VERIFY_PER_MINUTE"])

    def get_dependency(self, worker_ctx) -> VerifyLimits:
        return self
