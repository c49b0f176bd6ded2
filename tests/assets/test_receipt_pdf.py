"""The receipt and appointment slip (Form 01) as PDF.

The PDF is read back the way a person or a scanner would: its text is extracted by two independent
readers (pypdf, and PDFium through pypdfium2), and the page is rasterised by PDFium and the QR code
decoded by zxing-cpp. Expected strings are written out by hand, not computed by the code under test.
"""

from __future__ import annotations

import copy
import io
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pypdf
import pypdfium2 as pdfium
import pytest
import zxingcpp

from services.dossier.pdf import REQUIRED_KEYS, format_time_vn, format_vnd, render_receipt_pdf

CODE = "26734-261123-0007"


def make_slip(**overrides) -> dict:
    slip = {
        "code": CODE,
        "unit_name": "Ủy ban nhân dân Phường Sài Gòn",
        "unit_identifier": "26734",
        "procedure_code": "1.001193",
        "procedure_name": "Đăng ký khai sinh",
        "applicant_name": "Nguyễn Thị Hằng",
        "applicant_id_number": "079190001234",
        # 02:30 UTC is 09:30 in Vietnam.
        "received_at": "2026-11-23T02:30:00+00:00",
        # 20:30 on the 24th in New York is 08:30 on the 25th in Vietnam.
        "due_at": "2026-11-24T20:30:00-05:00",
        "documents": [
            {"name": "Tờ khai đăng ký khai sinh theo mẫu", "original": 1, "copies": 0},
            {"name": "Giấy chứng sinh do cơ sở y tế cấp", "original": 1, "copies": 0},
            {"name": "Giấy tờ tùy thân của người đi đăng ký khai sinh", "original": 0, "copies": 2},
        ],
        "fees": [
            {"name": "Lệ phí đăng ký khai sinh", "amount_vnd": 50000},
            {"name": "Phí cấp bản sao trích lục", "amount_vnd": 1250000},
        ],
        "return_method": "postal",
        "channel": "counter",
        "officer": "Trần Văn Đức",
    }
    slip.update(overrides)
    return slip


def squash(text: str) -> str:
    return " ".join(text.split())


def text_pypdf(pdf: bytes) -> str:
    return squash(" ".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages))


def text_pdfium(pdf: bytes) -> str:
    document = pdfium.PdfDocument(pdf)
    try:
        return squash(" ".join(page.get_textpage().get_text_range() for page in document))
    finally:
        document.close()


EXTRACTORS = [pytest.param(text_pypdf, id="pypdf"), pytest.param(text_pdfium, id="pdfium")]


@pytest.fixture(scope="module")
def pdf() -> bytes:
    return render_receipt_pdf(make_slip())


@pytest.mark.parametrize("extract", EXTRACTORS)
@pytest.mark.parametrize(
    "expected",
    [
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "Độc lập - Tự do - Hạnh phúc",
        "ỦY BAN NHÂN DÂN PHƯỜNG SÀI GÒN",
        "BỘ PHẬN TIẾP NHẬN VÀ TRẢ KẾT QUẢ",
        "GIẤY TIẾP NHẬN HỒ SƠ VÀ HẸN TRẢ KẾT QUẢ",
        "Mã hồ sơ: 26734-261123-0007",
        "Bộ phận Tiếp nhận và Trả kết quả: Ủy ban nhân dân Phường Sài Gòn",
        "Tiếp nhận hồ sơ của: Nguyễn Thị Hằng",
        "079190001234",
        "Đăng ký khai sinh (mã thủ tục: 1.001193)",
        "Tên giấy tờ",
        "Bản chính",
        "Bản sao",
        "Tờ khai đăng ký khai sinh theo mẫu",
        "Giấy chứng sinh do cơ sở y tế cấp",
        "Giấy tờ tùy thân của người đi đăng ký khai sinh",
        "NGƯỜI NỘP HỒ SƠ",
        "NGƯỜI TIẾP NHẬN HỒ SƠ",
        "(Ký và ghi rõ họ tên)",
        "Trần Văn Đức",
    ],
)
def test_vietnamese_text_reads_back_exactly(pdf, extract, expected):
    assert expected in extract(pdf)


@pytest.mark.parametrize("extract", EXTRACTORS)
def test_times_are_shown_in_vietnam_time(pdf, extract):
    text = extract(pdf)
    assert "Thời gian nhận hồ sơ: 09 giờ 30 phút, ngày 23 tháng 11 năm 2026" in text
    assert "Thời gian trả kết quả: 08 giờ 30 phút, ngày 25 tháng 11 năm 2026" in text
    assert "Ngày 23 tháng 11 năm 2026" in text  # the date line under the motto
    # Neither the UTC nor the New York wall-clock time leaks onto the slip.
    assert "02 giờ 30 phút" not in text
    assert "20 giờ 30 phút" not in text


def test_appointment_is_the_due_time_for_any_offset():
    # The same instant written with three offsets gives the same appointment.
    for due_at in ("2026-12-31T17:00:00Z", "2027-01-01T00:00:00+07:00", "2027-01-01T02:00:00+09:00"):
        text = text_pypdf(render_receipt_pdf(make_slip(due_at=due_at)))
        assert "Thời gian trả kết quả: 00 giờ 00 phút, ngày 01 tháng 01 năm 2027" in text, due_at


def test_day_and_month_padding_follows_decree_30():
    from datetime import datetime
    from zoneinfo import ZoneInfo

    vn = ZoneInfo("Asia/Ho_Chi_Minh")
    assert (
        format_time_vn(datetime(2026, 2, 5, 7, 5, tzinfo=vn)) == "07 giờ 05 phút, ngày 05 tháng 02 năm 2026"
    )
    assert (
        format_time_vn(datetime(2026, 3, 9, 13, 0, tzinfo=vn)) == "13 giờ 00 phút, ngày 09 tháng 3 năm 2026"
    )
    assert format_time_vn(datetime(2026, 12, 31, 16, 59, tzinfo=vn)) == (
        "16 giờ 59 phút, ngày 31 tháng 12 năm 2026"
    )


@pytest.mark.parametrize("extract", EXTRACTORS)
def test_fees_are_formatted_in_dong(pdf, extract):
    text = extract(pdf)
    assert "Lệ phí đăng ký khai sinh: 50.000 đồng" in text
    assert "Phí cấp bản sao trích lục: 1.250.000 đồng" in text
    assert "Tổng cộng: 1.300.000 đồng" in text


def test_format_vnd():
    assert format_vnd(0) == "0 đồng"
    assert format_vnd(999) == "999 đồng"
    assert format_vnd(50000) == "50.000 đồng"
    assert format_vnd(1250000) == "1.250.000 đồng"


def test_no_fees_and_a_single_fee():
    text = text_pypdf(render_receipt_pdf(make_slip(fees=[])))
    assert "Không thu phí, lệ phí" in text
    assert "Tổng cộng" not in text
    text = text_pypdf(render_receipt_pdf(make_slip(fees=[{"name": "Lệ phí", "amount_vnd": 8000}])))
    assert "Lệ phí: 8.000 đồng" in text
    assert "Tổng cộng" not in text


def test_documents_table_rows_carry_their_counts(pdf):
    text = text_pdfium(pdf)
    assert re.search(r"1 Tờ khai đăng ký khai sinh theo mẫu 1 0\b", text), text
    assert re.search(r"2 Giấy chứng sinh do cơ sở y tế cấp 1 0\b", text), text
    assert re.search(r"3 Giấy tờ tùy thân của người đi đăng ký khai sinh 0 2\b", text), text


def test_return_method_and_channel_are_spelled_out():
    postal = text_pypdf(render_receipt_pdf(make_slip(return_method="postal", channel="online")))
    assert "Hình thức nhận kết quả: Qua dịch vụ bưu chính công ích" in postal
    assert "Hình thức nộp hồ sơ: Trực tuyến qua Cổng Dịch vụ công" in postal
    counter = text_pypdf(render_receipt_pdf(make_slip(return_method="counter", channel="postal")))
    assert "Hình thức nhận kết quả: Tại Bộ phận Tiếp nhận và Trả kết quả" in counter
    assert "Hình thức nộp hồ sơ: Qua dịch vụ bưu chính công ích" in counter


def test_decomposed_input_prints_as_precomposed_text():
    nfd = unicodedata.normalize("NFD", "Nguyễn Thị Hằng")
    assert nfd != "Nguyễn Thị Hằng"
    text = text_pypdf(render_receipt_pdf(make_slip(applicant_name=nfd)))
    assert "Tiếp nhận hồ sơ của: Nguyễn Thị Hằng" in text


def test_the_qr_code_top_right_decodes_to_the_dossier_code(pdf):
    document = pdfium.PdfDocument(pdf)
    try:
        image = document[0].render(scale=150 / 72).to_pil()
    finally:
        document.close()
    barcodes = zxingcpp.read_barcodes(image)
    assert [(b.format, b.text) for b in barcodes] == [(zxingcpp.BarcodeFormat.QRCode, CODE)]
    corners = barcodes[0].position
    xs = [corners.top_left.x, corners.top_right.x, corners.bottom_left.x, corners.bottom_right.x]
    ys = [corners.top_left.y, corners.top_right.y, corners.bottom_left.y, corners.bottom_right.y]
    assert min(xs) > image.width * 0.75, "QR code is not at the right of the page"
    assert max(ys) < image.height * 0.15, "QR code is not at the top of the page"


def test_a_longer_code_still_decodes():
    code = "000.00.26.H29-261123-0123"
    document = pdfium.PdfDocument(render_receipt_pdf(make_slip(code=code)))
    try:
        image = document[0].render(scale=150 / 72).to_pil()
    finally:
        document.close()
    assert [b.text for b in zxingcpp.read_barcodes(image)] == [code]


def test_with_a_secret_the_qr_code_opens_the_lookup_page_and_the_secret_is_printed():
    # The longest link a receipt carries: a public base, the longest code of today's map, the secret.
    url = "https://dichvucong.tphcm.gov.vn/tra-cuu#ma=000.00.26.H29-261123-0123&s=ABCD-EFGH"
    slip = make_slip(code="000.00.26.H29-261123-0123", lookup_url=url, lookup_secret="ABCD-EFGH")
    pdf = render_receipt_pdf(slip)
    document = pdfium.PdfDocument(pdf)
    try:
        image = document[0].render(scale=150 / 72).to_pil()
    finally:
        document.close()
    assert [b.text for b in zxingcpp.read_barcodes(image)] == [url]
    text = text_pdfium(pdf)
    assert "Mã tra cứu (giữ kín): ABCD-EFGH" in text
    assert (
        "7. Tra cứu hồ sơ: quét mã QR, hoặc vào https://dichvucong.tphcm.gov.vn/tra-cuu, "
        "nhập mã hồ sơ và mã tra cứu" in text
    )
    assert "s=ABCD" not in text, "the link with the secret is only in the QR code"


def test_without_a_secret_the_receipt_says_how_to_look_up_by_identity_number():
    url = "https://dichvucong.tphcm.gov.vn/tra-cuu#ma=26734-261123-0007"
    pdf = render_receipt_pdf(make_slip(lookup_url=url))
    text = text_pdfium(pdf)
    assert "vào https://dichvucong.tphcm.gov.vn/tra-cuu, nhập mã hồ sơ và số định danh cá nhân" in text
    assert "Mã tra cứu" not in text


def test_rendering_is_deterministic():
    first = render_receipt_pdf(make_slip())
    second = render_receipt_pdf(copy.deepcopy(make_slip()))
    assert first == second
    assert render_receipt_pdf(make_slip(code="26734-261123-0008")) != first


def test_rendering_does_not_depend_on_the_process(pdf):
    # Set and dict ordering must not leak into the bytes: render in fresh interpreters with other hash seeds.
    script = (
        "import sys; from services.dossier.pdf import render_receipt_pdf; "
        "from tests.assets.test_receipt_pdf import make_slip; "
        "sys.stdout.buffer.write(render_receipt_pdf(make_slip()))"
    )
    root = Path(__file__).resolve().parents[2]
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(root)}
        result = subprocess.run(
            [sys.executable, "-c", script], cwd=root, env=env, capture_output=True, check=True, timeout=60
        )
        assert result.stdout == pdf, f"PYTHONHASHSEED={seed} gave other bytes"


def test_metadata_is_fixed_by_the_slip(pdf):
    info = pypdf.PdfReader(io.BytesIO(pdf)).metadata
    assert info["/CreationDate"] == "D:20261123023000Z"  # the receipt time, not the time of rendering
    assert info["/Title"] == "Giấy tiếp nhận hồ sơ và hẹn trả kết quả 26734-261123-0007"
    assert info["/Author"] == "Ủy ban nhân dân Phường Sài Gòn"


def test_page_is_a4_and_every_font_is_embedded(pdf):
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert (round(float(box.width), 1), round(float(box.height), 1)) == (595.3, 841.9)
    fonts = reader.pages[0]["/Resources"]["/Font"]
    assert len(fonts) == 3  # regular, bold, italic
    for ref in fonts.values():
        font = ref.get_object()
        assert font["/Subtype"] == "/Type0"
        assert "/ToUnicode" in font
        descriptor = font["/DescendantFonts"][0].get_object()["/FontDescriptor"].get_object()
        assert "/FontFile2" in descriptor, f"{font['/BaseFont']} is not embedded"


def test_a_long_list_of_documents_flows_onto_a_second_page():
    documents = [{"name": f"Giấy tờ kèm theo số {n}", "original": 1, "copies": 1} for n in range(1, 41)]
    pdf = render_receipt_pdf(make_slip(documents=documents))
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) >= 2
    last = squash(reader.pages[-1].extract_text())
    assert "Giấy tờ kèm theo số 40" in text_pypdf(pdf)
    assert "NGƯỜI TIẾP NHẬN HỒ SƠ" in last


@pytest.mark.parametrize("key", REQUIRED_KEYS)
def test_a_missing_key_is_named(key):
    slip = make_slip()
    del slip[key]
    with pytest.raises(ValueError, match=rf"missing key\(s\): {key}$"):
        render_receipt_pdf(slip)


def test_every_missing_key_is_named_at_once():
    slip = make_slip()
    del slip["code"], slip["due_at"]
    with pytest.raises(ValueError, match=r"missing key\(s\): code, due_at"):
        render_receipt_pdf(slip)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"documents": [{"name": "Tờ khai", "original": 1}]}, r"documents\[0\] is missing key\(s\): copies"),
        ({"fees": [{"amount_vnd": 1000}]}, r"fees\[0\] is missing key\(s\): name"),
        ({"fees": [{"name": "Lệ phí", "amount_vnd": -1}]}, r"fees\[0\]\.amount_vnd"),
        ({"documents": [{"name": "Tờ khai", "original": True, "copies": 0}]}, r"documents\[0\]\.original"),
        ({"received_at": "2026-11-23T09:30:00"}, r"received_at needs a UTC offset"),
        ({"due_at": "25/11/2026"}, r"due_at is not an ISO 8601"),
        ({"due_at": "2026-11-20T17:00:00+07:00"}, r"due_at is earlier than received_at"),
        ({"return_method": "email"}, r"return_method must be one of counter, postal"),
        ({"channel": 1}, r"channel must be one of counter, online, postal"),
        ({"applicant_name": "   "}, r"applicant_name must not be empty"),
        ({"officer": None}, r"officer must be a string"),
        ({"applicant_name": "王小明"}, r"applicant_name has characters the slip's font cannot print: U\+"),
    ],
)
def test_bad_values_are_refused_with_the_key_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        render_receipt_pdf(make_slip(**overrides))
