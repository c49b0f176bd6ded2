"""Log scrubbing (issue 11 §3): the values of an applicant never reach a log line."""

from __future__ import annotations

import logging

from shared.logs import install, scrub

APPLICANT = {
    "full_name": "Lê Thị Hồng Nhung",
    "id_number": "089190004567",
    "phone": "0912 345 678",
    "email": "nhung.le@example.vn",
    "address": "12 Nguyễn Huệ, Bến Nghé",
}


def test_database_errors_lose_their_values():
    message = (
        '(psycopg2.errors.UniqueViolation) duplicate key value violates unique constraint "ix"\n'
        "DETAIL:  Key (id_number)=(089190004567) already exists.\n"
        "[SQL: INSERT INTO dossiers (applicant) VALUES (%(applicant)s)]\n"
        f"[parameters: {{'applicant': {APPLICANT!r}}}]"
    )
    scrubbed = scrub(message)
    for value in ("089190004567", "Lê Thị", "0912 345 678", "nhung.le", "Nguyễn Huệ"):
        assert value not in scrubbed
    assert "UniqueViolation" in scrubbed and "INSERT INTO dossiers" in scrubbed


def test_plain_operational_text_stays_readable():
    text = "metrics.dossier-events: attempt 2/5 failed (OperationalError: database is locked); requeued"
    assert scrub(text) == text
    assert scrub("dossier 26740-261123-0001 sequence 2") == "dossier 26740-261123-0001 sequence 2"
    access = '127.0.0.1 - - [29/Nov/2026 16:02:25] "POST /api/v1/dossiers HTTP/1.1" 201 912 0.052310'
    assert scrub(access) == access


def test_every_record_and_its_traceback_is_scrubbed(caplog):
    install()
    log = logging.getLogger("motcua.test")
    with caplog.at_level(logging.INFO):
        log.info("body %s", APPLICANT)
        try:
            raise ValueError(f"cannot store {APPLICANT}")
        except ValueError:
            log.exception("store failed for %s", APPLICANT["id_number"])
    text = caplog.text + "".join(record.exc_text or "" for record in caplog.records)
    for value in APPLICANT.values():
        assert value not in text
    assert "ValueError" in text and "store failed for <number>" in text
