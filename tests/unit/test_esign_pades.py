"""Result document, keys and PAdES signatures, without the service (services/esign/).

What each test expects comes from the issue and Decree 30/2020: NFC Vietnamese text, the national
motto, no identity number; the leader's signature then the organisation's in a second incremental
revision that leaves the first intact; SHA-256 with RSA-PSS; the seal over the left third of the
leader's box; a one-byte change reported as "modified"; keys encrypted at rest.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import unicodedata
from datetime import UTC, datetime

import pypdf
import pytest
from cryptography import x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

from services.esign import pades
from services.esign.document import LEADER_BOX, ResultDocument, render_result
from services.esign.keys import DevelopmentPki, FileKeyStore, KeyUnavailable, _private_key_info, to_asn1_cert
from services.esign.storage import DocumentStore, sha256_hex
from services.esign.tsa import TsaClient
from shared.neighbours import NeighbourUnavailable, Policy
from shared.transient import is_transient

NOW = datetime(2026, 11, 30, 3, 4, 5, tzinfo=UTC)
ISSUED = datetime(2026, 12, 31, 17, 30, tzinfo=UTC)  # 00:30 on 1 January 2027 in Vietnam
# Decomposed on purpose: the document must come out NFC.
REASON_NFD = unicodedata.normalize("NFD", "Thiếu giấy chứng sinh bản chính")


def result(**changes) -> ResultDocument:
    values = dict(
        unit_name="Ủy ban nhân dân Phường Bến Nghé",
        unit_code="26740",
        series="KQ-26740",
        drafted_at=NOW,
        place="Thành phố Hồ Chí Minh",
        dossier_code="G01-261130-0007",
        procedure="1.001193",
        applicant_reference="G01-261130-0007",
        decision="rejected",
        reason=REASON_NFD,
        verify_url="https://dichvucong.example/api/v1/verifications/abc",
        signer_title="Chủ tịch",
    )
    values.update(changes)
    return ResultDocument(**values)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> DevelopmentPki:
    return DevelopmentPki(tmp_path_factory.mktemp("pki"), "unit-test-passphrase")


@pytest.fixture(scope="module")
def signed_twice(pki) -> bytes:
    keys = FileKeyStore(pki)
    tsa = pki.obtain("tsa")
    stamper = DummyTimeStamper(tsa_cert=to_asn1_cert(tsa.certificate), tsa_key=_private_key_info(tsa.key))
    pdf = render_result(result())
    first = pades.sign_as_leader(
        pdf,
        keys.signer_for("person:leader.an", "Nguyễn Văn An"),
        signer_name="Nguyễn Văn An",
        location="Thành phố Hồ Chí Minh",
        now=NOW,
        timestamper=stamper,
    )
    assert first.startswith(pdf)  # an incremental update: the unsigned bytes are untouched
    second = pades.seal(
        first,
        keys.signer_for("org:26740", "Ủy ban nhân dân Phường Bến Nghé"),
        unit_name="Ủy ban nhân dân Phường Bến Nghé",
        location="Thành phố Hồ Chí Minh",
        document_number="07/KQ-26740",
        issued_at=ISSUED,
        timestamper=stamper,
    )
    assert second.startswith(first)  # the seal is a second revision; the signed one stays as it was
    return second


def test_result_document_text_is_vietnamese_nfc_with_motto_and_no_identity_number():
    text = pypdf.PdfReader(io.BytesIO(render_result(result()))).pages[0].extract_text()
    text = unicodedata.normalize("NFC", text)
    for expected in (
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "Độc lập - Tự do - Hạnh phúc",
        "ỦY BAN NHÂN DÂN PHƯỜNG BẾN NGHÉ",
        "Số: ....../KQ-26740",  # the number and the date are given at issue, by the clerk
        "ngày ...... tháng ...... năm ......",
        "G01-261130-0007",
        "TỪ CHỐI",
        "Thiếu giấy chứng sinh bản chính",
    ):
        assert expected in text, expected


def test_result_document_carries_a_qr_code_to_the_verification_page():
    import pypdfium2
    import zxingcpp

    page = pypdfium2.PdfDocument(render_result(result()))[0]
    image = page.render(scale=3).to_pil()
    found = [code.text for code in zxingcpp.read_barcodes(image)]
    assert "https://dichvucong.example/api/v1/verifications/abc" in found


def test_a_rejection_without_a_reason_is_not_rendered():
    with pytest.raises(ValueError, match="reason"):
        render_result(result(reason="  "))


def test_both_signatures_valid_trusted_timestamped_pss_sha256(pki, signed_twice):
    reports = pades.verify(signed_twice, [to_asn1_cert(pki.root.certificate)])
    assert [r.field for r in reports] == [pades.LEADER_FIELD, pades.SEAL_FIELD]
    assert all(r.intact and r.trusted and r.verdict_ok for r in reports)
    assert pades.overall(reports) == "valid and trusted"
    leader, seal = reports
    assert leader.signer == "Nguyễn Văn An"
    assert leader.coverage == "ENTIRE_REVISION" and seal.coverage == "ENTIRE_FILE"
    assert leader.modification_level == "FORM_FILLING"  # the seal's revision adds a signature field
    assert leader.timestamp is not None and leader.timestamp_trusted
    assert leader.signing_time.endswith("+07:00")
    for embedded in PdfFileReader(io.BytesIO(signed_twice)).embedded_signatures:
        assert embedded.signer_info["signature_algorithm"]["algorithm"].native == "rsassa_pss"
        assert embedded.md_algorithm == "sha256"


def test_a_foreign_root_is_not_trusted(signed_twice, tmp_path):
    stranger = DevelopmentPki(tmp_path / "other", "another-passphrase")
    reports = pades.verify(signed_twice, [to_asn1_cert(stranger.root.certificate)])
    assert not any(r.trusted for r in reports)
    assert pades.overall(reports).startswith("not valid")


def test_one_changed_byte_is_reported_as_modified(pki, signed_twice):
    at = signed_twice.index(b"/Producer") + 12
    tampered = signed_twice[:at] + bytes([signed_twice[at] ^ 0x01]) + signed_twice[at + 1 :]
    reports = pades.verify(tampered, [to_asn1_cert(pki.root.certificate)])
    assert not reports[0].intact
    assert pades.overall(reports) == "modified"


def test_not_a_pdf_is_refused(pki):
    with pytest.raises(pades.NotAPdf):
        pades.verify(b"GIF89a", [to_asn1_cert(pki.root.certificate)])


def test_an_independent_reader_finds_both_signatures_valid(signed_twice, tmp_path):
    """Poppler's pdfsig checks the two signatures (not their chain: the test root is not in its store)."""
    pdfsig = shutil.which("pdfsig")
    if pdfsig is None:
        # As softhsm2: missing on CI is a failure (.ci/run installs poppler-utils), elsewhere a skip.
        if os.environ.get("CI"):
            pytest.fail("install Debian's poppler-utils package")
        pytest.skip("install Debian's poppler-utils package")
    path = tmp_path / "sealed.pdf"
    path.write_bytes(signed_twice)
    report = subprocess.run([pdfsig, "-nocert", str(path)], capture_output=True, text=True, timeout=60).stdout
    assert report.count("Signature Validation: Signature is Valid.") == 2, report
    assert "Signature Field Name: ChuKyLanhDao" in report and "Signature Field Name: ChuKyCoQuan" in report


def test_the_seal_shows_the_number_and_the_vietnam_date_of_issue(signed_twice):
    import pypdfium2
    import pypdfium2.raw as pdfium_c

    document = pypdfium2.PdfDocument(signed_twice)
    try:
        # The appearances are annotations: flattened into the page, their text reads back.
        assert (
            pdfium_c.FPDFPage_Flatten(document[0].raw, pdfium_c.FLAT_NORMALDISPLAY)
            == pdfium_c.FLATTEN_SUCCESS
        )
        text = unicodedata.normalize("NFC", document[0].get_textpage().get_text_range())
    finally:
        document.close()
    # 17:30 UTC on 31 December is 00:30 on 1 January in Vietnam: the date of issue is the new year's
    assert "Số 07/KQ-26740" in text and "ngày 01/01/2027" in text


def test_the_seal_overlaps_the_left_third_of_the_leaders_box():
    lx1, ly1, lx2, ly2 = LEADER_BOX
    sx1, sy1, sx2, sy2 = pades.seal_box()
    overlap = min(lx2, sx2) - max(lx1, sx1)
    assert overlap == pytest.approx((lx2 - lx1) / 3)
    assert sx1 < lx1  # it sits on the left, sticking out of the box
    assert ly1 <= (sy1 + sy2) / 2 <= ly2


def test_appearance_time_is_iso_8601_vietnam_time():
    assert pades.iso_vietnam(NOW) == "2026-11-30T10:04:05+07:00"


def test_keys_are_encrypted_at_rest_and_need_the_passphrase(tmp_path):
    pki = DevelopmentPki(tmp_path, "right-passphrase")
    issued = pki.obtain("person:leader.an", "Nguyễn Văn An")
    key_file = tmp_path / "person-leader.an.key.pem"
    assert key_file.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    key_usage = issued.certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert key_usage.digital_signature and key_usage.content_commitment  # nonRepudiation
    assert "CN=MOTCUA TEST ROOT" in pki.root.certificate.subject.rfc4514_string()
    with pytest.raises(KeyUnavailable, match="PASSPHRASE"):
        DevelopmentPki(tmp_path, "wrong-passphrase")
    with pytest.raises(KeyUnavailable):
        DevelopmentPki(tmp_path / "empty", "")


def test_the_store_is_content_addressed_and_immutable(tmp_path):
    store = DocumentStore(tmp_path)
    digest = store.put(b"%PDF-1.7 one")
    assert digest == sha256_hex(b"%PDF-1.7 one")
    assert store.put(b"%PDF-1.7 one") == digest  # the same bytes: the same address, nothing rewritten
    path = tmp_path / digest[:2] / f"{digest}.pdf"
    assert path.stat().st_mode & 0o222 == 0  # read-only
    path.chmod(0o644)
    path.write_bytes(b"%PDF-1.7 two")
    with pytest.raises(OSError, match="tampered"):
        store.get(digest)
    assert store.get("0" * 64) is None
    with pytest.raises(ValueError):
        store.get("../../etc/passwd")


def test_an_unreachable_timestamp_authority_signs_nothing_and_is_a_retryable_failure(pki):
    """The TSA's client is a neighbour (shared/neighbours.py): a TSA that does not answer is
    NeighbourUnavailable, a ConnectionError the HTTP layer answers 503 with Retry-After — nothing was
    signed, a retry may succeed."""
    stamper = TsaClient("http://127.0.0.1:9/", Policy(connect_timeout=2, attempts=2, backoff=0))
    signatures = pades.PadesSignatures(FileKeyStore(pki), stamper, "Huế")
    with pytest.raises(NeighbourUnavailable) as failed:
        signatures.sign(render_result(result()), signer_sub="leader.an", signer_name="Nguyễn Văn An", now=NOW)
    assert is_transient(failed.value) and failed.value.neighbour == "tsa"
    assert failed.value.problem().headers["Retry-After"] == "5"  # no Retry-After from a refused connection
    stamper.close()


def test_the_seal_images_kept_are_bounded_however_many_units_seal():
    # A seal image is 0.6 MiB; a province has hundreds of issuing units. Every unit that ever sealed
    # kept its image for the process's life (the soak's esign growth): at most SEAL_IMAGES_KEPT now.
    pades._seal_image.cache_clear()
    units = [f"Ủy ban nhân dân xã số {n}" for n in range(pades.SEAL_IMAGES_KEPT + 25)]
    for unit in units:
        pades.seal_style(unit)
    assert pades._seal_image.cache_info().currsize == pades.SEAL_IMAGES_KEPT
    # the most recent units' images are the ones kept, and reused
    assert pades._seal_image(units[-1]) is pades._seal_image(units[-1])
    assert pades._seal_image.cache_info().hits >= 2
