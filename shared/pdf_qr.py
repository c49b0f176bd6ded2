"""A QR code drawn into an fpdf2 page as vector squares: the receipt's lookup link (services/dossier/pdf.py)
and the signed result's verification link (services/esign/document.py) use the same drawing."""

from __future__ import annotations

import segno
from fpdf import FPDF


def draw_qr(pdf: FPDF, data: str, x: float, y: float, size: float) -> None:
    """``data`` as a QR code (error correction M) of ``size`` × ``size`` at (``x``, ``y``), in the page's
    units: one filled rectangle per run of dark modules in a row, so it stays sharp at any zoom."""
    matrix = segno.make(data, error="m", micro=False).matrix
    module = size / len(matrix)
    pdf.set_fill_color(0, 0, 0)
    for row_index, row in enumerate(matrix):
        col = 0
        while col < len(row):
            if not row[col]:
                col += 1
                continue
            start = col
            while col < len(row) and row[col]:
                col += 1
            pdf.rect(x + start * module, y + row_index * module, (col - start) * module, module, "F")
