"""The citizen's lookup page (GET /tra-cuu): one HTML file with its CSS and JS inline, nothing external,
served with a Content-Security-Policy that allows exactly those inline blocks (by their SHA-256) and
requests to this origin."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

SOURCE = Path(__file__).with_name("page") / "tra-cuu.html"


def _hashes(html: str, tag: str) -> str:
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.S)
    return " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()}'" for block in blocks
    )


@dataclass(frozen=True)
class Page:
    html: bytes
    headers: dict[str, str]


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``; empty for no URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def load(payment_start: str = "") -> Page:
    """The page; ``payment_start`` (the payment service's start page) is the one other origin its forms
    may post to (the "Thanh toán trực tuyến" button)."""
    html = SOURCE.read_text(encoding="utf-8")
    forms = " ".join(filter(None, ("'self'", _origin(payment_start))))
    policy = (
        f"default-src 'none'; script-src {_hashes(html, 'script')}; style-src {_hashes(html, 'style')}; "
        f"connect-src 'self'; img-src 'self'; form-action {forms}; base-uri 'none'; frame-ancestors 'none'"
    )
    return Page(
        html.encode(),
        {
            "Content-Security-Policy": policy,
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-cache",
        },
    )
