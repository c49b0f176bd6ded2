"""PAdES signatures on the result document, and their verification (pyHanko).

* :func:`sign_as_leader` — the competent person's visible signature in :data:`document.LEADER_BOX`:
  the title is printed above the box by the document, the handwritten-signature image sits in the
  middle, the name and the signing time (ISO 8601, Vietnam time) below it (Decree 30/2020, Annex I).
* :func:`seal` — the organisation's signature in a second incremental revision, its seal image
  overlapping the left third of the leader's box, the document's number and date of issue under it
  (given at the seal); the first revision stays byte-for-byte intact.
* :func:`verify` — every signature: intact, trusted, signer, time, timestamp, coverage, what changed
  after it, and a verdict a desk officer can read.
* :class:`PadesSignatures` — the three, with the key store's keys: the use cases' signing adapter
  (services/esign/service_layer.py ``Signatures``).

PAdES baseline (ETSI EN 319 142): SHA-256, RSA-PSS or ECDSA, ``ETSI.CAdES.detached``; B-T when a
timestamper is given (the signature timestamp of an RFC 3161 TSA).
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import selectors
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import cache
from typing import Any

from asn1crypto import x509 as asn1_x509
from PIL import Image, ImageDraw, ImageFont
from pyhanko.pdf_utils import layout
from pyhanko.pdf_utils.font.opentype import GlyphAccumulatorFactory
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfReadError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.sign import fields
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers import PdfSignatureMetadata, PdfSigner, Signer
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.stamp import TextStampStyle
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.path import ValidationPath

from services.esign.document import FONT_BOLD, FONT_REGULAR, LEADER_BOX, nfc
from services.esign.domain.model import VN_TZ
from services.esign.keys import KeyStore
from services.esign.revocation import NeighbourFetcherBackend
from shared import clock

log = logging.getLogger(__name__)

LEADER_FIELD = "ChuKyLanhDao"
SEAL_FIELD = "ChuKyCoQuan"
# One size in the glyph accumulator and the text box (a mismatch sets the text at the wrong scale).
STAMP_FONT_SIZE = 9
SEAL_SIZE = 100.0  # points
SEAL_TEXT_HEIGHT = 24.0  # under the seal image: the number and the date of issue


def seal_box(leader_box: tuple[float, float, float, float] = LEADER_BOX) -> tuple[float, float, float, float]:
    """The seal's rectangle: a square whose right edge reaches a third into the leader's box."""
    x1, y1, x2, y2 = leader_box
    right = x1 + (x2 - x1) / 3
    middle = (y1 + y2) / 2
    return (right - SEAL_SIZE, middle - SEAL_SIZE / 2 - SEAL_TEXT_HEIGHT, right, middle + SEAL_SIZE / 2)


def iso_vietnam(moment: datetime) -> str:
    """2026-11-29T22:48:30+07:00: the signing time shown on the appearance."""
    return moment.astimezone(VN_TZ).replace(microsecond=0).isoformat()


@cache
def _signature_image() -> Image.Image:
    """A stand-in for the signer's handwritten signature (a province stores each signer's own)."""
    image = Image.new("RGBA", (600, 200), (255, 255, 255, 0))
    draw = ImageDraw.Draw(image)
    points = [(40 + t * 5.2, 110 - 55 * math.sin(t / 9) * math.exp(-t / 160)) for t in range(100)]
    draw.line(points, fill=(20, 40, 150, 255), width=7, joint="curve")
    draw.line([(120, 150), (520, 120)], fill=(20, 40, 150, 255), width=5)
    return image


@cache
def _seal_image(unit_name: str) -> Image.Image:
    """The organisation's round red seal: two rings, a star, the unit's name."""
    size = 400
    image = Image.new("RGBA", (size, size), (255, 255, 255, 0))
    draw = ImageDraw.Draw(image)
    red = (200, 20, 30, 230)
    draw.ellipse((8, 8, size - 8, size - 8), outline=red, width=14)
    draw.ellipse((70, 70, size - 70, size - 70), outline=red, width=6)
    centre, radius = size / 2, 55
    star = [
        (
            centre + (radius if i % 2 == 0 else radius * 0.4) * math.sin(math.pi * i / 5),
            centre - (radius if i % 2 == 0 else radius * 0.4) * math.cos(math.pi * i / 5),
        )
        for i in range(10)
    ]
    draw.polygon(star, fill=red)
    font = ImageFont.truetype(str(FONT_BOLD), 26)
    text = nfc(unit_name.upper())[:28]
    width = draw.textlength(text, font=font)
    draw.text((centre - width / 2, size - 125), text, font=font, fill=red)
    return image


def _text_style() -> TextBoxStyle:
    return TextBoxStyle(
        font=GlyphAccumulatorFactory(str(FONT_REGULAR), font_size=STAMP_FONT_SIZE),
        font_size=STAMP_FONT_SIZE,
        border_width=0,
    )


def leader_style() -> TextStampStyle:
    """Signature image in the middle of the box, name and time under it."""
    return TextStampStyle(
        stamp_text="\n\n\n\n%(signer)s\n%(signed_at)s",
        text_box_style=_text_style(),
        inner_content_layout=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MID, y_align=layout.AxisAlignment.ALIGN_MIN
        ),
        background=PdfImage(_signature_image()),
        background_layout=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MID,
            y_align=layout.AxisAlignment.ALIGN_MAX,
            margins=layout.Margins(10, 10, 28, 6),
        ),
        background_opacity=1.0,
        border_width=0,
    )


def seal_style(unit_name: str) -> TextStampStyle:
    """The seal image, the issuing unit's name in it; under it the number and the date of issue."""
    return TextStampStyle(
        stamp_text="Số %(number)s\nngày %(issued_on)s",
        text_box_style=_text_style(),
        inner_content_layout=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MID, y_align=layout.AxisAlignment.ALIGN_MIN
        ),
        background=PdfImage(_seal_image(unit_name)),
        background_layout=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MID,
            y_align=layout.AxisAlignment.ALIGN_MAX,
            margins=layout.Margins(0, 0, 0, SEAL_TEXT_HEIGHT),
        ),
        background_opacity=1.0,
        border_width=0,
    )


def _metadata(field_name: str, name: str, reason: str, location: str) -> PdfSignatureMetadata:
    return PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        name=nfc(name),
        reason=nfc(reason),
        location=nfc(location),
    )


class _SignerAt(PdfSigner):
    """A ``PdfSigner`` whose signing time (the signature's /M) is the service's clock, not the host's."""

    def __init__(self, moment: datetime, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.moment = moment

    def init_signing_session(self, pdf_out, existing_fields_only=False):
        session = super().init_signing_session(pdf_out, existing_fields_only)
        session.system_time = self.moment
        return session


async def _sign(
    pdf: bytes,
    signer: Signer,
    meta: PdfSignatureMetadata,
    style: TextStampStyle,
    box: tuple[float, float, float, float],
    text_params: dict[str, str],
    timestamper: TimeStamper | None,
    moment: datetime,
) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    pdf_signer = _SignerAt(
        moment,
        meta,
        signer,
        timestamper=timestamper,
        stamp_style=style,
        new_field_spec=fields.SigFieldSpec(meta.field_name, on_page=0, box=box),
    )
    key = _reservation_key(signer, timestamper)
    output = await pdf_signer.async_sign_pdf(
        writer, appearance_text_params=text_params, bytes_reserved=_RESERVED.get(key)
    )
    signed = output.getvalue()
    if key not in _RESERVED:
        _RESERVED[key] = _reserved_bytes(signed)
    return signed


# The room pyHanko reserves for a signature container, per signing certificate and timestamper: its own
# estimate (a dry-run signature, timestamp included, plus half again for the timestamp's variation),
# made on the first signature and reused, instead of a second signature per document.
_RESERVED: dict[tuple[bytes, int | None], int] = {}


def _reservation_key(signer: Signer, timestamper: TimeStamper | None) -> tuple[bytes, int | None]:
    return signer.signing_cert.sha256, None if timestamper is None else id(timestamper)


def _reserved_bytes(pdf: bytes) -> int:
    """The size of the newest signature's /Contents placeholder: hexadecimal digits, as pyHanko counts it."""
    start = pdf.rindex(b"/Contents <") + len(b"/Contents <")
    return pdf.index(b">", start) - start


class _InlineExecutor(ThreadPoolExecutor):
    """Runs ``to_thread`` work in the calling thread.

    pyHanko hands blocking steps (the TSA request, the key operation) to the loop's default executor.
    Under eventlet, whose patched threads never wake the loop's selector, that hangs; run inline,
    a blocking call simply yields to the other green threads.
    """

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            future.set_exception(exc)
        return future


class _NoWaitSelector(selectors.BaseSelector):
    """A selector that never waits on a file descriptor.

    Everything pyHanko waits for runs in :class:`_InlineExecutor`, so its loop never needs to poll;
    eventlet's green ``select`` (which a nameko process has in place of the real one) loses the
    loop's wake-ups, so it must not be used here.
    """

    def __init__(self) -> None:
        self._keys: dict[int, selectors.SelectorKey] = {}

    @staticmethod
    def _fd(fileobj) -> int:
        return fileobj if isinstance(fileobj, int) else fileobj.fileno()

    def register(self, fileobj, events, data=None) -> selectors.SelectorKey:
        key = selectors.SelectorKey(fileobj, self._fd(fileobj), events, data)
        self._keys[key.fd] = key
        return key

    def unregister(self, fileobj) -> selectors.SelectorKey:
        return self._keys.pop(self._fd(fileobj))

    def get_key(self, fileobj) -> selectors.SelectorKey:
        try:
            return self._keys[self._fd(fileobj)]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None

    def select(self, timeout=None):
        if timeout is None:
            raise RuntimeError("pyHanko waited for I/O outside the inline executor")
        if timeout > 0:
            time.sleep(timeout)
        return []

    def close(self) -> None:
        self._keys.clear()

    def get_map(self):
        return dict(self._keys)


def run(coroutine) -> Any:
    """pyHanko is asynchronous inside; the service's workers call it synchronously.

    A private loop that never polls (:class:`_NoWaitSelector`) and runs blocking steps inline, closed
    without ``shutdown_default_executor`` (no helper thread to wait for).
    """
    loop = asyncio.SelectorEventLoop(_NoWaitSelector())
    loop.set_default_executor(_InlineExecutor())
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def sign_as_leader(
    pdf: bytes,
    signer: Signer,
    *,
    signer_name: str,
    location: str,
    now: datetime,
    timestamper: TimeStamper | None = None,
) -> bytes:
    meta = _metadata(LEADER_FIELD, signer_name, "Ký ban hành kết quả giải quyết", location)
    params = {"signer": nfc(signer_name), "signed_at": iso_vietnam(now)}
    return run(_sign(pdf, signer, meta, leader_style(), LEADER_BOX, params, timestamper, now))


def seal(
    pdf: bytes,
    signer: Signer,
    *,
    unit_name: str,
    location: str,
    document_number: str,
    issued_at: datetime,
    timestamper: TimeStamper | None = None,
) -> bytes:
    """The organisation's signature: the document is issued with ``document_number`` on ``issued_at``."""
    meta = _metadata(SEAL_FIELD, unit_name, "Đóng dấu cơ quan ban hành", location)
    params = {"number": nfc(document_number), "issued_on": f"{issued_at.astimezone(VN_TZ):%d/%m/%Y}"}
    return run(_sign(pdf, signer, meta, seal_style(unit_name), seal_box(), params, timestamper, clock.now()))


# --- verification -------------------------------------------------------------------------------------


class NotAPdf(ValueError):
    """The bytes are not a PDF pyHanko can read."""


@dataclass(frozen=True)
class SignatureReport:
    field: str
    intact: bool
    valid: bool
    trusted: bool
    signer: str | None
    signer_organisation: str | None
    signing_time: str | None
    timestamp: str | None
    timestamp_trusted: bool | None
    coverage: str
    modification_level: str | None
    verdict_ok: bool
    verdict: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _name_part(cert: asn1_x509.Certificate | None, key: str) -> str | None:
    if cert is None:
        return None
    return cert.subject.native.get(key)


def _verdict(status, intact: bool, modified: bool) -> tuple[bool, str]:
    if not intact:
        return False, "modified: the document was changed after this signature; do not rely on it"
    if status.revoked:
        return False, "revoked: the signer's certificate was revoked before the signature"
    if not status.trusted and isinstance(getattr(status, "validation_path", None), ValidationPath):
        # a path to a trusted root was found, and refused: revocation status unknown or another check
        indication = status.trust_problem_indic.name if status.trust_problem_indic else "unknown"
        return False, (
            f"not trusted: the chain to a trusted root was refused ({indication}; for instance no answer "
            "from the certificate's OCSP responder or CRL)"
        )
    if not status.trusted:
        return False, "not trusted: the signer's certificate does not chain to a trusted root"
    if not status.bottom_line:
        return False, "invalid: the signature or its timestamp does not check out"
    if modified:
        return False, "modified: content was changed after this signature"
    return True, "valid and trusted"


REVOCATION_MODES = ("soft-fail", "hard-fail", "require")


@dataclass(frozen=True)
class Revocation:
    """How verification learns whether a certificate was revoked: pyhanko-certvalidator's mode, and the
    OCSP responses and CRLs fetched from the addresses the certificates name.

    ``hard-fail`` (the default): a certificate that names an OCSP responder or a CRL must be shown not
    revoked by one of them; a revoked one, or no answer, fails the signature. ``soft-fail``: no answer is
    let pass. ``require``: every certificate must have revocation information. Fetching uses
    pyhanko-certvalidator's requests fetchers with each call through the shared neighbour client
    (services/esign/revocation.py: timeouts, a second attempt, a circuit per responder), whose blocking
    calls run inline in :func:`run`'s private loop (a green socket under eventlet); its aiohttp fetchers
    would need the loop to poll, which it cannot here. oscrypto, which pyhanko-certvalidator declares, is
    never imported: it serves only the operating system's trust list, and verification always names its
    roots.
    """

    mode: str = "hard-fail"
    fetch: bool = True
    timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.mode not in REVOCATION_MODES:
            raise ValueError(
                f"ESIGN_REVOCATION_MODE must be one of {', '.join(REVOCATION_MODES)}, not {self.mode!r}"
            )
        if self.timeout_seconds <= 0:
            raise ValueError("ESIGN_REVOCATION_TIMEOUT_SECONDS must be more than 0")

    def context(self, roots: list[asn1_x509.Certificate]) -> ValidationContext:
        # validated at the service's time: certificates issued under a moved clock are valid then
        return ValidationContext(
            trust_roots=roots,
            allow_fetching=self.fetch,
            fetcher_backend=NeighbourFetcherBackend(per_request_timeout=self.timeout_seconds)
            if self.fetch
            else None,
            revocation_mode=self.mode,
            moment=clock.now(),
        )


async def _verify(
    pdf: bytes, roots: list[asn1_x509.Certificate], revocation: Revocation
) -> list[SignatureReport]:
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        signatures = list(reader.embedded_regular_signatures)
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise NotAPdf(f"not a readable PDF: {exc}") from exc
    context = revocation.context(roots)
    reports = []
    for embedded in signatures:
        status = await async_validate_pdf_signature(embedded, signer_validation_context=context)
        level = status.modification_level
        # Another signature or form filling after this one is allowed; anything else is a change.
        modified = level is not None and level.name not in ("NONE", "LTA_UPDATES", "FORM_FILLING")
        ok, verdict = _verdict(status, status.intact, modified)
        ts = status.timestamp_validity
        reports.append(
            SignatureReport(
                field=embedded.field_name,
                intact=bool(status.intact),
                valid=bool(status.valid),
                trusted=bool(status.trusted),
                signer=_name_part(status.signing_cert, "common_name"),
                signer_organisation=_name_part(status.signing_cert, "organization_name"),
                signing_time=iso_vietnam(status.signer_reported_dt) if status.signer_reported_dt else None,
                timestamp=iso_vietnam(ts.timestamp) if ts is not None else None,
                timestamp_trusted=None if ts is None else bool(ts.valid and ts.intact and ts.trusted),
                coverage=status.coverage.name if status.coverage is not None else "UNKNOWN",
                modification_level=level.name if level is not None else None,
                verdict_ok=ok,
                verdict=verdict,
            )
        )
    return reports


def verify(
    pdf: bytes, roots: list[asn1_x509.Certificate], revocation: Revocation = Revocation()
) -> list[SignatureReport]:
    if not pdf.startswith(b"%PDF-"):
        raise NotAPdf("not a PDF: the file does not start with %PDF-")
    return run(_verify(pdf, roots, revocation))


def overall(reports: list[SignatureReport]) -> str:
    """One line for the desk: every signature valid and trusted, or what is wrong."""
    if not reports:
        return "unsigned: the document carries no signature"
    if any(r.verdict.startswith("modified") for r in reports):
        return "modified"
    if all(r.verdict_ok for r in reports):
        return "valid and trusted"
    return "not valid: " + "; ".join(f"{r.field}: {r.verdict}" for r in reports if not r.verdict_ok)


# --- the use cases' adapter ---------------------------------------------------------------------------


class SigningUnavailable(ConnectionError):
    """The timestamp authority or the signing key failed: nothing was signed, and a retry may succeed
    (a ConnectionError: the HTTP layer answers 503, shared/transient.py)."""


@contextmanager
def _signing() -> Iterator[None]:
    try:
        yield
    except TimestampRequestError as exc:
        raise SigningUnavailable(
            f"the timestamp authority did not answer ({exc}); nothing was signed"
        ) from exc
    except SigningError as exc:
        log.error("signing failed: %s", exc)
        raise SigningUnavailable("the signing key could not be used; nothing was signed") from exc


@dataclass(frozen=True)
class PadesSignatures:
    """PAdES signatures with the key store's keys: a person's own, a unit's (the seal), and checks."""

    keys: KeyStore
    timestamper: TimeStamper | None
    place: str
    revocation: Revocation = Revocation()

    def sign(self, pdf: bytes, *, signer_sub: str, signer_name: str, now: datetime) -> bytes:
        with _signing():
            return sign_as_leader(
                pdf,
                self.keys.signer_for(f"person:{signer_sub}", signer_name),
                signer_name=signer_name,
                location=self.place,
                now=now,
                timestamper=self.timestamper,
            )

    def seal(
        self, pdf: bytes, *, unit: str, unit_name: str, document_number: str, issued_at: datetime
    ) -> bytes:
        with _signing():
            return seal(
                pdf,
                self.keys.signer_for(f"org:{unit}", unit_name),
                unit_name=unit_name,
                location=self.place,
                document_number=document_number,
                issued_at=issued_at,
                timestamper=self.timestamper,
            )

    def verify(self, pdf: bytes) -> list[SignatureReport]:
        """Every signature of ``pdf``, checked against the service's trust roots; NotAPdf if unreadable."""
        return verify(pdf, self.keys.trust_roots(), self.revocation)

    def close(self) -> None:
        """Release the key store (a PKCS#11 session; the file store holds nothing open) and the TSA's
        client."""
        for held in (self.keys, self.timestamper):
            close = getattr(held, "close", None)
            if close is not None:
                close()
