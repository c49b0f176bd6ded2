"""The result document (văn bản kết quả) as a PDF ready to be signed.

``render_result(result)`` lays out one A4 page in the administrative style of Decree 30/2020: the
issuing unit and the national motto side by side, the document's number and date left blank (the clerk
gives both when the document is issued; they are printed in the seal's appearance), the place, the
title, the dossier code, the procedure, the applicant's reference (never an identity number), the
decision and, for a rejection, the reason; a QR code to the public verification page; and, bottom
right, the signature block whose rectangle :data:`LEADER_BOX` the leader's visible signature fills.

Text is NFC-normalised and set in Noto Sans (shipped in ``assets/``, SIL OFL): fpdf2 then renders
Vietnamese with its precomposed glyphs. The shipped files are Noto Sans's Vietnamese subset without
the OpenType layout tables (GSUB, GPOS, GDEF): fpdf2 and pyHanko drop those from every font they embed,
and parsing them for each document was a quarter of a signed result's cost (removed with fontTools:
``del font[tag]`` for the three tags, then ``save``). The PDF is deterministic for the same input.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import Align, XPos, YPos

from shared.pdf_qr import draw_qr

ASSETS = Path(__file__).with_name("assets")
FONT_REGULAR = ASSETS / "NotoSans-Regular-vi.ttf"
FONT_BOLD = ASSETS / "NotoSans-Bold-vi.ttf"
MOTTO_1 = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
MOTTO_2 = "Độc lập - Tự do - Hạnh phúc"
DECISIONS = {"approved": "CHẤP THUẬN", "rejected": "TỪ CHỐI"}
# The dossier service's reason codes (its events carry the code, never the officer's text), as printed.
REASON_LABELS = {
    "incomplete_dossier": "Hồ sơ chưa đầy đủ",
    "invalid_documents": "Giấy tờ không hợp lệ",
    "outside_competence": "Không thuộc thẩm quyền giải quyết",
    "conditions_not_met": "Không đủ điều kiện theo quy định",
    "verification_needed": "Cần xác minh thêm",
    "awaiting_other_agency": "Chờ ý kiến của cơ quan khác",
    "applicant_request": "Theo đề nghị của người nộp hồ sơ",
    "workload": "Chưa giải quyết kịp",
    "other": "Lý do khác (chi tiết tại văn bản thẩm định)",
}

PAGE_W, PAGE_H = 210.0, 297.0
MM = 72 / 25.4
# The signature block, in PDF points from the lower-left corner: (x1, y1, x2, y2).
# The leader's appearance fills it; the seal overlaps its left third (pades.seal_box).
LEADER_BOX = (330.0, 250.0, 530.0, 360.0)
QR_MM = 28.0
BLANK = "......"  # the number and the date, given at issue


def nfc(text: str) -> str:
    """Vietnamese in one form: precomposed (NFC), as the fonts' glyphs and search expect."""
    return unicodedata.normalize("NFC", text)


@dataclass(frozen=True)
class ResultDocument:
    """What the result document says. ``applicant_reference`` is the reference the applicant looks up
    their dossier by, never their identity number."""

    unit_name: str
    unit_code: str
    series: str  # the number's symbol after the slash, e.g. KQ-26740; the number itself comes at issue
    drafted_at: datetime
    place: str
    dossier_code: str
    procedure: str
    applicant_reference: str
    decision: str
    reason: str | None
    verify_url: str
    signer_title: str


class _Page(FPDF):
    def __init__(self) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.set_margins(20, 15, 15)
        self.set_auto_page_break(False)
        self.add_font("NotoSans", "", str(FONT_REGULAR))
        self.add_font("NotoSans", "B", str(FONT_BOLD))
        self.set_title("Kết quả giải quyết thủ tục hành chính")
        self.set_lang("vi")

    def text_line(self, text: str, *, size: float, style: str = "", align: Align = Align.L, w: float = 0):
        self.set_font("NotoSans", style, size)
        self.cell(w, size * 0.5, nfc(text), align=align, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def render_result(result: ResultDocument) -> bytes:
    if result.decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}")
    if result.decision == "rejected" and not (result.reason or "").strip():
        raise ValueError("a rejection states its reason")
    pdf = _Page()
    pdf.set_creation_date(result.drafted_at)
    pdf.add_page()

    # Header: the issuing unit on the left, the national motto on the right.
    top = pdf.get_y()
    pdf.set_xy(15, top)
    pdf.set_font("NotoSans", "B", 10)
    pdf.multi_cell(75, 5, nfc(result.unit_name.upper()), align=Align.C)
    pdf.set_x(15)
    pdf.set_font("NotoSans", "", 10)
    pdf.cell(75, 6, nfc(f"Số: {BLANK}/{result.series}"), align=Align.C)
    pdf.set_xy(90, top)
    pdf.set_font("NotoSans", "B", 10)
    pdf.cell(110, 5, nfc(MOTTO_1), align=Align.C, new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.cell(110, 5, nfc(MOTTO_2), align=Align.C, new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.line(122, pdf.get_y(), 168, pdf.get_y())
    pdf.set_y(pdf.get_y() + 2)
    pdf.set_x(90)
    pdf.set_font("NotoSans", "", 10)
    dated = f"{result.place}, ngày {BLANK} tháng {BLANK} năm {BLANK}"
    pdf.cell(110, 6, nfc(dated), align=Align.C)

    pdf.set_y(58)
    pdf.text_line("THÔNG BÁO", size=14, style="B", align=Align.C)
    pdf.text_line("Kết quả giải quyết thủ tục hành chính", size=12, style="B", align=Align.C)
    pdf.ln(6)

    rows = (
        ("Mã hồ sơ", result.dossier_code),
        ("Thủ tục", result.procedure),
        ("Mã tra cứu của người nộp", result.applicant_reference),
        ("Kết quả", DECISIONS[result.decision]),
    )
    for label, value in rows:
        pdf.set_font("NotoSans", "B", 11)
        pdf.cell(55, 7, nfc(f"{label}:"))
        pdf.set_font("NotoSans", "", 11)
        pdf.multi_cell(0, 7, nfc(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if result.decision == "rejected":
        pdf.set_font("NotoSans", "B", 11)
        pdf.cell(55, 7, nfc("Lý do:"))
        pdf.set_font("NotoSans", "", 11)
        pdf.multi_cell(0, 7, nfc(result.reason or ""), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)
    pdf.set_font("NotoSans", "", 10)
    pdf.multi_cell(
        0,
        5,
        nfc(
            "Văn bản này được ký số bởi người có thẩm quyền và cơ quan ban hành. "
            "Quét mã QR hoặc truy cập địa chỉ dưới đây để kiểm tra chữ ký số:"
        ),
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.set_font("NotoSans", "", 8)
    pdf.multi_cell(0, 4, result.verify_url, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    # The signature block's title above the box the leader's appearance fills.
    x1, _y1, x2, y2 = LEADER_BOX
    pdf.set_xy(x1 / MM, PAGE_H - y2 / MM - 7)
    pdf.set_font("NotoSans", "B", 10)
    pdf.cell((x2 - x1) / MM, 6, nfc(result.signer_title.upper()), align=Align.C)

    draw_qr(pdf, result.verify_url, 20, PAGE_H - 20 - QR_MM, QR_MM)
    return bytes(pdf.output())
