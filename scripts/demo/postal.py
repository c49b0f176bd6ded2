"""The postal part of ``make demo``: pickups at the applicant's door and returns by post, through the
operator simulator that ``make run`` starts, with the co-signed hand-over record.

Five applicants ask the portal for a pickup; the simulator collects the dossiers and brings them to
the desk; the operator and the desk officer sign one hand-over record (one package is found missing:
a discrepancy, and that dossier is refused); the received dossiers are filed at the record's time,
decided, and sent back by post: their sealed results leave the desk on a second co-signed record (the
operator delivers nothing before it) — one delivered first time, one after a failed attempt, one to
an authorised proxy, one comes back to the desk and is returned at the counter.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

from scripts.demo.client import VIETNAM, Api, DemoError, Tokens

PROCEDURE = "1.004859"  # a commune procedure offered by post both ways
APPLICANTS = [
    ("Nguyễn Văn An", "079203001234", "0901234567", "12 Lê Lợi"),
    ("Trần Thị Bình", "079203001235", "0901234568", "34 Hai Bà Trưng"),
    ("Lê Văn Cường", "079203001236", "0901234569", "56 Nguyễn Huệ"),
    ("Phạm Thị Dung", "079203001237", "0901234570", "78 Pasteur"),
    ("Hoàng Văn Em", "079203001238", "0901234571", "90 Điện Biên Phủ"),
]
# The operator's behaviour for each applicant's pickup, then for each delivery (simulator faults).
PICKUP_FAULTS = ["duplicate", "out_of_order", "unknown_status", "happy", "happy"]
DELIVERY_FAULTS = ["happy", "failed_delivery", "proxy", "returned_to_sender"]


def _local(moment: str | None) -> str:
    return "—" if not moment else datetime.fromisoformat(moment).astimezone(VIETNAM).strftime("%H:%M:%S")


def _wait(what: str, check, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise DemoError(f"postal demo: {what} did not happen within {timeout:.0f} s")


def run(
    dossier: Api, tokens: Tokens, unit: str, *, postal_url: str, operator_url: str, timeout: float
) -> None:
    postal = Api("postal", postal_url, timeout=30)
    operator = Api("postal-operator", operator_url, timeout=30)
    operator.request("POST", "/_control/scenarios", json={"scenarios": PICKUP_FAULTS + DELIVERY_FAULTS})
    portal = tokens.get("portal", unit)
    desk, courier = tokens.get("desk_officer", unit), tokens.get("postal_operator")
    print(f"\nPostal flows at unit {unit} (Decision 45/2016): pickups at the door, returns by post")
    pickups = []
    for (name, id_number, phone, street), fault in zip(APPLICANTS, PICKUP_FAULTS, strict=True):
        body = {
            "procedure_code": PROCEDURE,
            "receiving_unit": unit,
            "applicant": {"full_name": name, "id_number": id_number},
            "pickup": {"name": name, "phone": phone, "address": f"{street}, {unit}"},
            "documents": [{"name": "Tờ khai", "copies": 1}, {"name": "Giấy tờ kèm theo", "copies": 1}],
            "return_method": "postal",
        }
        shipment = postal.request("POST", "/api/v1/pickups", token=portal, json=body, expect=(201,)).json()
        pickups.append(shipment)
        print(
            f"  pickup ordered: dossier {shipment['dossier_code']} (status 1, channel postal), "
            f"consignment {shipment['consignment']}, fee {shipment['fee_vnd']:,} VND; operator: {fault}"
        )

    def shipments(code: str) -> list[dict]:
        return postal.request("GET", f"/api/v1/shipments/{code}", token=desk).json()["results"]

    for pickup in pickups:
        _wait(
            f"pickup {pickup['consignment']} at the desk",
            lambda p=pickup: shipments(p["dossier_code"])[0]["status"] == "delivered",
            timeout,
        )
    counted = [
        {"consignment": p["consignment"], "packages_counted": 0 if i == 4 else 1}
        for i, p in enumerate(pickups)
    ]
    record = postal.request(
        "POST",
        "/api/v1/handover-records",
        token=courier,
        expect=(201,),
        json={"direction": "pickup", "receiving_unit": unit, "items": counted},
    ).json()
    for item in record["items"]:
        if item["discrepancy"]:
            print(
                f"  hand-over record {record['id'][:8]}: {item['consignment']} {item['discrepancy']} "
                f"(declared {item['packages_declared']}, counted {item['packages_counted']}): "
                "recorded, alerted"
            )
    postal.request("POST", f"/api/v1/handover-records/{record['id']}/signatures", token=courier, json={})
    time.sleep(1)
    decisions = [
        {"consignment": p["consignment"], "outcome": "received"}
        if i < 4
        else {
            "consignment": p["consignment"],
            "outcome": "refused",
            "reason": "Không nhận được bưu gửi",
            "reason_code": "incomplete_dossier",
        }
        for i, p in enumerate(pickups)
    ]
    record = postal.request(
        "POST",
        f"/api/v1/handover-records/{record['id']}/signatures",
        token=desk,
        json={"decisions": decisions},
    ).json()
    print(
        f"  hand-over record signed by the operator at {_local(record['operator_signed_at'])} and the "
        f"desk at {_local(record['desk_signed_at'])}: the record's time, {_local(record['signed_at'])}, "
        "is the filing time"
    )
    codes = [p["dossier_code"] for p in pickups]

    def dossier_of(code: str) -> dict:
        return dossier.request("GET", f"/api/v1/dossiers/{code}", token=desk).json()

    for code in codes[:4]:
        _wait(f"dossier {code} received", lambda c=code: dossier_of(c)["status"] == 2, timeout)
    _wait(f"dossier {codes[4]} refused", lambda: dossier_of(codes[4])["status"] == 3, timeout)
    steps = [
        ("start_processing", "desk_officer", {}),
        ("appraise", "handling_officer", {"opinion": "Hợp lệ"}),
        ("decide", "leader", {"decision": "approved"}),
        ("sign", "leader", {}),
        ("stamp", "clerk", {}),
        ("resolve", "handling_officer", {}),
    ]

    def last_delivery(code: str) -> dict | None:
        found = [s for s in shipments(code) if s["direction"] == "delivery"]
        return found[-1] if found else None

    for code in codes[:4]:
        for action, role, body in steps:
            dossier.request(
                "POST",
                f"/api/v1/dossiers/{code}/actions/{action}",
                token=tokens.get(role, unit),
                json=body,
                role=role,
                key=f"{code}-{action}-{uuid.uuid4().hex[:6]}",
            )
        # one order at a time, so each delivery takes the next queued operator behaviour in turn
        _wait(f"the delivery of {code} to be ordered", lambda c=code: last_delivery(c), timeout)
    deliveries = [last_delivery(code) for code in codes[:4]]
    record = postal.request(
        "POST",
        "/api/v1/handover-records",
        token=courier,
        expect=(201,),
        json={
            "direction": "delivery",
            "receiving_unit": unit,
            "items": [{"consignment": d["consignment"], "packages_counted": 1} for d in deliveries],
        },
    ).json()
    postal.request("POST", f"/api/v1/handover-records/{record['id']}/signatures", token=courier, json={})
    record = postal.request(
        "POST", f"/api/v1/handover-records/{record['id']}/signatures", token=desk, json={}
    ).json()
    print(
        f"  {len(deliveries)} sealed results handed to the postal worker on record {record['id'][:8]}, "
        f"co-signed at {_local(record['signed_at'])}: only now may the operator deliver them"
    )
    for code in codes[:4]:
        _wait(
            f"the delivery of {code} to finish",
            lambda c=code: (d := last_delivery(c)) and d["status"] in ("delivered", "returned_to_sender"),
            3 * timeout,
        )
    back = codes[3]
    dossier.request("POST", f"/api/v1/dossiers/{back}/actions/return", token=desk, json={"method": "counter"})
    for code in codes[:3]:
        _wait(f"dossier {code} returned", lambda c=code: dossier_of(c)["status"] == 10, timeout)
    print(
        "\n  dossier                     filed (record)  delivery             attempts  recipient   "
        "status  returned"
    )
    for code in codes:
        d, delivery = dossier_of(code), last_delivery(code) or {}
        print(
            f"  {code:27} {_local(d.get('received_at')):15} {delivery.get('status', '—'):20} "
            f"{delivery.get('attempts', '—')!s:9} {delivery.get('recipient_kind') or '—':11} "
            f"{d['status']:<7} "
            f"{_local(d.get('returned_at'))} {d.get('return_method') if d['status'] == 10 else ''}"
        )
    print(
        "  (returned_at of a postal return is the operator's delivery time; the returned-to-sender "
        "result was "
        "handed over at the counter)"
    )
