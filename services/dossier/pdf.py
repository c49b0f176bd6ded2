"""The printable receipt and appointment slip (Form 01, "Giấy tiếp nhận hồ sơ và hẹn trả kết quả").

``render_receipt_pdf(slip)`` lays out an A4 page like the official form: the receiving unit and the
national motto, the title, the dossier code (also as a QR code, top right), who filed what, the fees,
when the dossier was received and when the result is due (both in Vietnam time), how the result is
returned, and the two signature blocks.

The text is set in DejaVu Serif, cut down to the Latin and Vietnamese ranges and shipped in
``assets/`` (see ``assets/README.md``), so no system font is needed. The output is byte-for-byte
the same for the same slip: the PDF's creation date is the receipt time, not the time of printing.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Mapping
from datetime import datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from fontTools.ttLib import TTFont
from fpdf import FPDF
from fpdf.enums import Align, TableCellFillMode, XPos, YPos
from fpdf.fonts import FontFace

from shared.pdf_qr import draw_qr

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
ASSETS = Path(__file__).with_name("assets")
FONT_FAMILY = "DejaVuSerif"
FONT_FILES = {"": "DejaVuSerif-vi.ttf", "B": "DejaVuSerif-Bold-vi.ttf", "I": "DejaVuSerif-Italic-vi.ttf"}

TITLE = "GIẤY TIẾP NHẬN HỒ SƠ VÀ HẸN TRẢ KẾT QUẢ"
MOTTO_1 = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
MOTTO_2 = "Độc lập - Tự do - Hạnh phúc"
DESK = "BỘ PHẬN TIẾP NHẬN VÀ TRẢ KẾT QUẢ"

# The slip's plain-text members, then the ones checked each in its own way.
TEXT_KEYS = (
    "code",
    "unit_name",
    "unit_identifier",
    "procedure_code",
    "procedure_name",
    "applicant_name",
    "applicant_id_number",
    "officer",
)
REQUIRED_KEYS = (*TEXT_KEYS, "received_at", "due_at", "documents", "fees", "return_method", "channel")
CHANNEL_LABELS = {
    "counter": "Trực tiếp tại Bộ phận Tiếp nhận và Trả kết quả",
    "online": "Trực tuyến qua Cổng Dịch vụ công",
    "postal": "Qua dịch vụ bưu chính công ích",
}
RETURN_LABELS = {
    "counter": "Tại Bộ phận Tiếp nhận và Trả kết quả",
    "postal": "Qua dịch vụ bưu chính công ích (chuyển phát đến địa chỉ người nộp)",
}

# A4 portrait, in millimetres.
MARGIN_LEFT = 15.0
MARGIN_RIGHT = 12.0
MARGIN_TOP = 12.0
QR_SIZE = 22.0
QR_QUIET = 4.0  # the white border a QR code needs around it


def format_vnd(amount: int) -> str:
    """``50000`` -> ``"50.000 đồng"`` (Vietnamese thousands separator)."""
    return f"{amount:,}".replace(",", ".") + " đồng"


def _day_month(moment: datetime) -> tuple[str, str]:
    # Decree 30/2020, Appendix I: days below 10 and the months 1 and 2 are written with a leading zero.
    day = f"{moment.day:02d}"
    month = f"{moment.month:02d}" if moment.month < 3 else str(moment.month)
    return day, month


def format_date_vn(moment: datetime) -> str:
    """``"ngày 23 tháng 11 năm 2026"``, the date in Vietnam time."""
    local = moment.astimezone(VN_TZ)
    day, month = _day_month(local)
    return f"ngày {day} tháng {month} năm {local.year}"


def format_time_vn(moment: datetime) -> str:
    """``"09 giờ 30 phút, ngày 23 tháng 11 năm 2026"``, in Vietnam time."""
    local = moment.astimezone(VN_TZ)
    return f"{local.hour:02d} giờ {local.minute:02d} phút, {format_date_vn(local)}"


@cache
def _font_codepoints() -> frozenset[int]:
    """Characters that every shipped face can draw."""
    sets = [set(TTFont(ASSETS / name).getBestCmap()) for name in FONT_FILES.values()]
    return frozenset(set.intersection(*sets))


def _text(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"receipt slip {key} must be a string, got {type(value).__name__}")
    text = " ".join(unicodedata.normalize("NFC", value).split())
    if not text:
        raise ValueError(f"receipt slip {key} must not be empty")
    missing = sorted({ch for ch in text if ord(ch) not in _font_codepoints()})
    if missing:
        shown = ", ".join(f"U+{ord(ch):04X}" for ch in missing)
        raise ValueError(f"receipt slip {key} has characters the slip's font cannot print: {shown}")
    return text


def _count(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"receipt slip {key} must be a non-negative integer, got {value!r}")
    return value


def _moment(value: object, key: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"receipt slip {key} must be an ISO 8601 string, got {type(value).__name__}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"receipt slip {key} is not an ISO 8601 date-time: {value!r}") from exc
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"receipt slip {key} needs a UTC offset: {value!r}")
    return moment


def _records(value: object, key: str, fields: tuple[str, ...]) -> Iterator[tuple[int, Mapping]]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"receipt slip {key} must be a list, got {type(value).__name__}")
    for index, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise ValueError(f"receipt slip {key}[{index}] must be an object")
        absent = [f for f in fields if f not in item]
        if absent:
            raise ValueError(f"receipt slip {key}[{index}] is missing key(s): {', '.join(absent)}")
        yield index, item


def _validated(slip: Mapping) -> dict:
    if not isinstance(slip, Mapping):
        raise ValueError("receipt slip must be a dict")
    absent = [key for key in REQUIRED_KEYS if key not in slip]
    if absent:
        raise ValueError(f"receipt slip is missing key(s): {', '.join(absent)}")
    data: dict = {key: _text(slip[key], key) for key in TEXT_KEYS}
    data["received_at"] = _moment(slip["received_at"], "received_at")
    data["due_at"] = _moment(slip["due_at"], "due_at")
    if data["due_at"] < data["received_at"]:
        raise ValueError("receipt slip due_at is earlier than received_at")
    for key, labels in (("channel", CHANNEL_LABELS), ("return_method", RETURN_LABELS)):
        if not isinstance(slip[key], str) or slip[key] not in labels:
            raise ValueError(f"receipt slip {key} must be one of {', '.join(labels)}, got {slip[key]!r}")
        data[key] = slip[key]
    data["documents"] = [
        {
            "name": _text(doc["name"], f"documents[{i}].name"),
            "original": _count(doc["original"], f"documents[{i}].original"),
            "copies": _count(doc["copies"], f"documents[{i}].copies"),
        }
        for i, doc in _records(slip["documents"], "documents", ("name", "original", "copies"))
    ]
    data["fees"] = [
        {
            "name": _text(fee["name"], f"fees[{i}].name"),
            "amount_vnd": _count(fee["amount_vnd"], f"fees[{i}].amount_vnd"),
        }
        for i, fee in _records(slip["fees"], "fees", ("name", "amount_vnd"))
    ]
    # The lookup (tra cứu): the QR code opens the page; the secret is printed only when it is given.
    data["lookup_url"] = _text(slip.get("lookup_url") or slip["code"], "lookup_url")
    data["lookup_secret"] = (
        _text(slip["lookup_secret"], "lookup_secret") if slip.get("lookup_secret") else None
    )
    return data


class _SlipPDF(FPDF):
    def __init__(self) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        for style, name in FONT_FILES.items():
            self.add_font(FONT_FAMILY, style, str(ASSETS / name))
        self.set_margins(MARGIN_LEFT, MARGIN_TOP, MARGIN_RIGHT)
        self.set_auto_page_break(True, margin=15)
        self.c_margin = 1.0

    def font(self, style: str = "", size: float = 12) -> None:
        self.set_font(FONT_FAMILY, style, size)

    def fit_font(self, text: str, style: str, width: float, size: float, smallest: float = 7.0) -> None:
        """The largest size up to ``size`` (in half points) that fits ``text`` on one line of ``width``."""
        self.font(style, size)
        while size > smallest and self.get_string_width(text) > width:
            size -= 0.5
            self.font(style, size)

    def line_text(
        self, text: str, style: str = "", size: float = 12, align: str = "L", h: float = 6.0
    ) -> None:
        self.font(style, size)
        self.multi_cell(0, h, text, align=align, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def labelled(self, label: str, value: str, size: float = 12, h: float = 6.5) -> None:
        """``label`` in bold followed by ``value``, wrapping at the right margin."""
        self.set_x(self.l_margin)
        self.font("B", size)
        self.write(h, label)
        self.font("", size)
        self.write(h, value)
        self.ln(h)

    def qr(self, data: str, x: float, y: float, size: float) -> None:
        draw_qr(self, data, x, y, size)


def _header(pdf: _SlipPDF, data: dict) -> None:
    top = pdf.t_margin
    qr_x = pdf.w - pdf.r_margin - QR_SIZE
    left_x, left_w = pdf.l_margin, 68.0
    right_x = left_x + left_w + 2.0
    right_w = qr_x - QR_QUIET - right_x
    saved_c_margin, pdf.c_margin = pdf.c_margin, 0.0

    # Left: the receiving unit and its desk.
    pdf.set_xy(left_x, top)
    unit = data["unit_name"].upper()
    pdf.fit_font(unit, "B", left_w, 10, smallest=8.5)
    pdf.multi_cell(left_w, 5, unit, align=Align.C, new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.fit_font(DESK, "B", left_w, 10)
    pdf.cell(left_w, 5, DESK, align=Align.C, new_x=XPos.LEFT, new_y=YPos.NEXT)
    rule_y = pdf.get_y() + 0.8
    pdf.set_line_width(0.3)
    pdf.line(left_x + left_w / 2 - 12, rule_y, left_x + left_w / 2 + 12, rule_y)
    pdf.set_xy(left_x, rule_y + 1.5)
    pdf.font("", 9.5)
    pdf.multi_cell(left_w, 5, f"Mã đơn vị: {data['unit_identifier']}", align=Align.C)
    left_bottom = pdf.get_y()

    # Centre-right: the national motto, underlined, and the date of receipt.
    pdf.set_xy(right_x, top)
    pdf.fit_font(MOTTO_1, "B", right_w, 10.5)
    pdf.cell(right_w, 5, MOTTO_1, align=Align.C, new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.fit_font(MOTTO_2, "B", right_w, 11.5)
    pdf.cell(right_w, 5.5, MOTTO_2, align=Align.C, new_x=XPos.LEFT, new_y=YPos.NEXT)
    motto_w = pdf.get_string_width(MOTTO_2)
    rule_y = pdf.get_y() + 0.6
    centre = right_x + right_w / 2
    pdf.line(centre - motto_w / 2, rule_y, centre + motto_w / 2, rule_y)
    pdf.set_xy(right_x, rule_y + 3)
    pdf.font("I", 11)
    pdf.cell(right_w, 5, format_date_vn(data["received_at"]).capitalize(), align=Align.C)
    right_bottom = pdf.get_y() + 5

    # Top right: the lookup page's link (code and secret) as a QR code, the code in small print under it.
    pdf.qr(data["lookup_url"], qr_x, top - 1, QR_SIZE)
    pdf.set_xy(qr_x - QR_QUIET, top - 1 + QR_SIZE + 0.5)
    pdf.fit_font(data["code"], "", QR_SIZE + 2 * QR_QUIET, 7)
    pdf.cell(QR_SIZE + 2 * QR_QUIET, 3, data["code"], align=Align.C)
    qr_bottom = top + QR_SIZE + 3

    pdf.c_margin = saved_c_margin
    pdf.set_xy(pdf.l_margin, max(left_bottom, right_bottom, qr_bottom) + 5)


def _title(pdf: _SlipPDF, data: dict) -> None:
    pdf.line_text(TITLE, "B", 14, Align.C, h=7)
    pdf.line_text(f"Mã hồ sơ: {data['code']}", "B", 12.5, Align.C, h=6.5)
    pdf.ln(3)


def _body(pdf: _SlipPDF, data: dict) -> None:
    pdf.labelled("Bộ phận Tiếp nhận và Trả kết quả: ", data["unit_name"])
    pdf.labelled("Tiếp nhận hồ sơ của: ", data["applicant_name"])
    pdf.labelled("Số định danh cá nhân/CCCD: ", data["applicant_id_number"])
    pdf.labelled(
        "Nội dung yêu cầu giải quyết: ", f"{data['procedure_name']} (mã thủ tục: {data['procedure_code']})"
    )
    pdf.labelled("Hình thức nộp hồ sơ: ", CHANNEL_LABELS[data["channel"]])
    pdf.ln(1.5)

    pdf.line_text("1. Thành phần hồ sơ nộp gồm:", "B", 12, h=6.5)
    pdf.ln(1)
    pdf.font("", 11)
    with pdf.table(
        col_widths=(13, 114, 28, 28),
        text_align=(Align.C, Align.L, Align.C, Align.C),
        line_height=5.5,
        padding=(1.2, 1.5),
        headings_style=FontFace(emphasis="BOLD", fill_color=(235, 235, 235)),
        cell_fill_mode=TableCellFillMode.NONE,
        width=pdf.epw,
    ) as table:
        heading = table.row()
        for label in ("STT", "Tên giấy tờ", "Bản chính", "Bản sao"):
            heading.cell(label, align=Align.C)
        for number, doc in enumerate(data["documents"], start=1):
            row = table.row()
            row.cell(str(number))
            row.cell(doc["name"])
            row.cell(str(doc["original"]))
            row.cell(str(doc["copies"]))
        if not data["documents"]:
            row = table.row()
            row.cell("", colspan=1)
            row.cell("(Không có giấy tờ kèm theo)")
            row.cell("")
            row.cell("")
    pdf.ln(2.5)

    pdf.line_text("2. Số lượng hồ sơ: 01 (bộ)", "B", 12, h=6.5)

    pdf.line_text("3. Phí, lệ phí:", "B", 12, h=6.5)
    if data["fees"]:
        for fee in data["fees"]:
            pdf.labelled("    - ", f"{fee['name']}: {format_vnd(fee['amount_vnd'])}")
        if len(data["fees"]) > 1:
            total = sum(fee["amount_vnd"] for fee in data["fees"])
            pdf.labelled("    Tổng cộng: ", format_vnd(total))
    else:
        pdf.labelled("    - ", "Không thu phí, lệ phí")

    pdf.labelled("4. Thời gian nhận hồ sơ: ", format_time_vn(data["received_at"]))
    pdf.labelled("5. Thời gian trả kết quả: ", format_time_vn(data["due_at"]))
    pdf.labelled("6. Hình thức nhận kết quả: ", RETURN_LABELS[data["return_method"]])
    page = data["lookup_url"].split("#", 1)[0]
    if data["lookup_secret"]:
        pdf.labelled("7. Tra cứu hồ sơ: ", f"quét mã QR, hoặc vào {page}, nhập mã hồ sơ và mã tra cứu")
        pdf.labelled("    Mã tra cứu (giữ kín): ", data["lookup_secret"])
    elif page.startswith(("http://", "https://")):
        pdf.labelled("7. Tra cứu hồ sơ: ", f"vào {page}, nhập mã hồ sơ và số định danh cá nhân")
    pdf.ln(5)


def _signatures(pdf: _SlipPDF, data: dict) -> None:
    block_h = 42.0
    if pdf.get_y() + block_h > pdf.h - pdf.b_margin:
        pdf.add_page()
    col_w = pdf.epw / 2
    top = pdf.get_y()
    for index, (role, name) in enumerate(
        (("NGƯỜI NỘP HỒ SƠ", data["applicant_name"]), ("NGƯỜI TIẾP NHẬN HỒ SƠ", data["officer"]))
    ):
        x = pdf.l_margin + index * col_w
        pdf.set_xy(x, top)
        pdf.font("B", 12)
        pdf.multi_cell(col_w, 6, role, align=Align.C, new_x=XPos.LEFT, new_y=YPos.NEXT)
        pdf.font("I", 10.5)
        pdf.multi_cell(col_w, 5, "(Ký và ghi rõ họ tên)", align=Align.C, new_x=XPos.LEFT, new_y=YPos.NEXT)
        pdf.set_xy(x, top + 33)
        pdf.font("B", 12)
        pdf.multi_cell(col_w, 6, name, align=Align.C)


def render_receipt_pdf(slip: dict) -> bytes:
    """The receipt and appointment slip (Form 01) for ``slip``, as an A4 PDF.

    Raises ``ValueError`` naming the key when a key is missing or its value unusable.
    """
    data = _validated(slip)
    pdf = _SlipPDF()
    pdf.set_creation_date(data["received_at"])
    pdf.set_title(f"{TITLE.capitalize()} {data['code']}")
    pdf.set_subject(data["procedure_name"])
    pdf.set_author(data["unit_name"])
    pdf.set_creator("motcua")
    pdf.set_lang("vi")
    pdf.add_page()
    _header(pdf, data)
    _title(pdf, data)
    _body(pdf, data)
    _signatures(pdf, data)
    return bytes(pdf.output())
