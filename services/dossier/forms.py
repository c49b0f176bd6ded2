"""The forms of docs/domain.md §6 as JSON, built from the dossier (its notices: what forms 02-05 said), its
procedure and hand-overs; the audit trail only names the officer.

Form 01 receipt and appointment, 02 supplement request, 03 refusal, 04 apology, 05 stop notice, and
the process-control slip. Times are Vietnam local ISO 8601 (printed documents show local time).
A form a dossier does not have (no refusal for a received dossier …) is :class:`FormNotIssued`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any

from services.dossier.catalogue import Procedure
from services.dossier.domain.model import Action, Dossier
from services.dossier.repository import AuditEntry
from shared.units import UnitRegistry, UnknownUnit

TITLES = {
    "receipt": ("01", "Giấy tiếp nhận hồ sơ và hẹn trả kết quả"),
    "supplement_request": ("02", "Phiếu yêu cầu bổ sung, hoàn thiện hồ sơ"),
    "refusal": ("03", "Phiếu từ chối tiếp nhận giải quyết hồ sơ"),
    "apology": ("04", "Phiếu xin lỗi và hẹn lại ngày trả kết quả"),
    "stop_notice": ("05", "Thông báo dừng xử lý hồ sơ"),
    "process_control": ("process_control", "Phiếu kiểm soát quá trình giải quyết hồ sơ"),
}
# Which action gives the notice each form shows.
NOTICE_ACTIONS = {
    "supplement_request": Action.REQUEST_SUPPLEMENT,
    "refusal": Action.REFUSE,
    "apology": Action.APOLOGIZE,
    "stop_notice": Action.STOP,
}


class FormNotIssued(LookupError):
    """The dossier has no such form (yet)."""


def _local(moment: datetime | None, zone: tzinfo) -> str | None:
    return None if moment is None else moment.astimezone(zone).isoformat(timespec="seconds")


def _unit_name(units: UnitRegistry, code: str | None) -> str:
    if code is None:
        return "Người nộp hồ sơ"  # the applicant, when the result was returned
    try:
        return units.get(code).name
    except UnknownUnit:
        return code


def _latest(trail: Sequence[AuditEntry], action: str) -> AuditEntry | None:
    return next((entry for entry in reversed(trail) if entry.action == action), None)


def build(
    form: str,
    *,
    dossier: Dossier,
    procedure: Procedure,
    units: UnitRegistry,
    trail: Sequence[AuditEntry],
    handovers: Sequence[Any],
    zone: tzinfo,
) -> dict[str, Any]:
    """The form ``form`` of ``dossier``; FormNotIssued when it has none."""
    number, title = TITLES[form]
    unit = units.get(dossier.receiving_unit)
    head = {
        "form": number,
        "title": title,
        "code": dossier.code,
        "unit_name": unit.name,
        "unit_identifier": unit.identifier,
        "procedure_code": procedure.code,
        "procedure_name": procedure.name,
        "applicant_name": dossier.applicant["full_name"],
    }
    if form in ("receipt", "process_control") and dossier.received_at is None:
        raise FormNotIssued(f"dossier {dossier.code} has not been received")
    if form == "receipt":
        received = _latest(trail, "receive")
        return {
            **head,
            "applicant_id_number": dossier.applicant["id_number"],
            "received_at": _local(dossier.received_at, zone),
            "due_at": _local(dossier.due_at, zone),
            "documents": [
                {"name": doc.name, "original": doc.original, "copies": doc.copies}
                for doc in procedure.required_documents
            ],
            "fees": [{"name": fee.name, "amount_vnd": fee.amount_vnd} for fee in procedure.fees],
            "return_method": dossier.return_method.name.lower(),
            "channel": dossier.channel.name.lower(),
            "officer": received.actor if received else "",
        }
    if form == "process_control":
        return {
            **head,
            "received_at": _local(dossier.received_at, zone),
            "due_at": _local(dossier.due_at, zone),
            "steps": [
                {
                    "stage": step.stage,
                    "code": step.code,
                    "name": step.name,
                    "agency": step.agency,
                    "allotment": step.allotment,
                    "due_at": _local(step.due_at, zone),
                }
                for step in dossier.plan
            ],
            "handovers": [
                {
                    "at": _local(row.at, zone),
                    "from_unit": row.from_unit,
                    "from_unit_name": _unit_name(units, row.from_unit),
                    "to_unit": row.to_unit,
                    "to_unit_name": _unit_name(units, row.to_unit),
                    "step": row.step,
                    "step_name": row.step_name,
                    "step_due_at": _local(row.step_due_at, zone),
                    "timeliness": row.timeliness,
                }
                for row in handovers
            ],
        }
    given = dossier.latest_notice(NOTICE_ACTIONS[form])
    if given is None:
        raise FormNotIssued(f"dossier {dossier.code} has no {form.replace('_', ' ')}")
    # Who gave it: the officer of the audit line of that moment (the domain does not know people).
    issued = next(
        (e for e in trail if e.action == given.action.value and e.at == given.issued_at),
        _latest(trail, given.action.value),
    )
    notice = {
        **head,
        "issued_at": _local(given.issued_at, zone),
        "officer": issued.actor if issued else "",
        "reason": given.reason,
    }
    if form == "supplement_request":
        notice["requested_at"] = notice.pop("issued_at")
        notice["items"] = list(given.items)
    elif form == "apology":
        notice["original_due_at"] = _local(dossier.original_due_at, zone)
        notice["new_due_at"] = _local(given.new_due_at, zone)
    return notice
