"""The plan of the day: which dossiers come to which desk, by which channel, and how each one ends."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import Any

from scripts.demo.client import DemoError
from services.dossier.catalogue import Procedure
from shared.units import UnitRegistry

CHANNELS = ("counter", "online", "postal")

# How often each procedure comes to a desk in a day (others in force: weight 2). Certification and
# civil status dominate a commune desk's day; land and business are rarer.
PROCEDURE_WEIGHTS = {
    "2.000815": 22,  # certified copy
    "2.000884": 8,  # signature certification
    "1.001193": 10,  # birth registration
    "1.004873": 8,  # marital-status certificate
    "2.000635": 5,  # civil-status extract copy
    "1.004227": 5,  # temporary residence
    "1.004194": 4,  # permanent residence
    "1.004211": 4,  # residence information
    "1.000894": 4,  # marriage
    "1.000656": 3,  # death
    "2.000720": 4,  # household business
    "2.001035": 3,  # contract certification
    "1.009994": 3,  # construction permit
    "1.004859": 3,  # civil-status correction
    "1.012766": 4,  # interlinked birth + residence + health insurance
    "1.012767": 3,  # interlinked death + residence + funeral allowance
    "1.012797": 3,  # land-use right transfer (tax interlinked)
    "2.000488": 3,  # criminal record (police interlinked)
    "2.002048": 2,  # single-member LLC
}
# A dossier that came by post is filed by its hand-over record in the postal service (postal.py),
# never by a click at the desk: this part files at the counter and online only.
CHANNEL_WEIGHTS = {"counter": 0.5, "online": 0.5}
HOLDS = ("received", "supplement_requested", "awaiting_payment", "stopped", "appraised", "signed")

# Names for the applicants (personal data stays in the dossier service: events never carry it).
FAMILY = "Nguyễn Trần Lê Phạm Hoàng Huỳnh Phan Vũ Võ Đặng Bùi Đỗ Hồ Ngô Dương Lý".split()  # noqa: SIM905
MIDDLE = "Văn Thị Minh Ngọc Thanh Hoàng Đức Thu Quốc Gia Mỹ Hữu".split()  # noqa: SIM905
GIVEN = (  # noqa: SIM905
    "An Bình Châu Dũng Giang Hà Hải Hạnh Hiếu Hòa Hùng Hương Khánh Lan Linh Long Mai Nam Nga Ngân "
    "Phúc Quân Tâm Thảo Trang Trí Tú Tuấn Vy Yến"
).split()
STREETS = (
    "Lê Lợi",
    "Nguyễn Huệ",
    "Hai Bà Trưng",
    "Điện Biên Phủ",
    "Cách Mạng Tháng Tám",
    "Võ Văn Tần",
    "Nguyễn Thị Minh Khai",
    "Trần Hưng Đạo",
    "Lý Thường Kiệt",
    "Phan Đăng Lưu",
)


@dataclass
class Case:
    """One dossier of the day and what will happen to it (decided up front, from the seed)."""

    index: int
    commune: str
    procedure: Procedure
    channel: str
    return_method: str = "counter"
    registration: str = "receive"  # online: receive, refuse, withdraw (before receipt)
    outcome: str = "returned"  # returned, awaiting_pickup, withdrawn, hold
    hold: str | None = None  # where a dossier left in process stops (HOLDS)
    supplement: str | None = None  # who asks for the supplement: desk (at receipt) or agency
    payment: int = 0  # fees asked for during processing, in đồng
    stop: bool = False
    apology: bool = False
    rejected: bool = False
    code: str = ""
    doc: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def status(self) -> int:
        return int(self.doc.get("status", 0))

    @property
    def decides(self) -> bool:
        return self.outcome in ("returned", "awaiting_pickup") or self.hold == "signed"


def fee_of(procedure: Procedure) -> int:
    return sum(fee.amount_vnd for fee in procedure.fees)


def quota(share: float, of: int) -> int:
    """At least one whenever there is anything to share: every path of the day shows up."""
    return min(of, max(1, round(share * of))) if of else 0


def local_first_stage(procedure: Procedure) -> bool:
    """The plan's first handling agency is the commune itself: the desk may ask for a supplement."""
    first = next((s.agency for s in procedure.steps if s.agency != "receiving_unit"), "receiving_unit")
    return first in ("commune", "receiving_unit") and "commune" in procedure.levels


def plan_day(rng: random.Random, n: int, communes: list[str], procedures: list[Procedure]) -> list[Case]:
    """Deal the day's fates by quota, so that even a small day walks every path of the lifecycle."""
    weights = [PROCEDURE_WEIGHTS.get(p.code, 2) for p in procedures]
    interlinked = [p for p in procedures if p.interlinked]
    chosen = rng.choices(procedures, weights=weights, k=n)
    missing = quota(0.06, n) - sum(p.interlinked for p in chosen) if interlinked else 0
    plain = [i for i, p in enumerate(chosen) if not p.interlinked]
    for k, i in enumerate(plain[: max(missing, 0)]):
        chosen[i] = interlinked[k % len(interlinked)]
    rng.shuffle(chosen)
    # Some desks are busier than others; each sees at least one dossier.
    load = [rng.uniform(0.4, 2.0) for _ in communes]
    desks = communes[:n] + rng.choices(communes, weights=load, k=max(n - len(communes), 0))
    rng.shuffle(desks)
    cases = []
    for index, (procedure, commune) in enumerate(zip(chosen, desks, strict=True)):
        allowed = [c for c in CHANNEL_WEIGHTS if c in procedure.channels]
        channel = rng.choices(allowed, weights=[CHANNEL_WEIGHTS[c] for c in allowed])[0]
        cases.append(Case(index, commune, procedure, channel))
    # Enough registrations for the desk to check and refuse some.
    wanted = quota(0.25, n) if n >= 4 else 0
    for case in cases:
        if sum(c.channel != "counter" for c in cases) >= wanted:
            break
        if case.channel == "counter" and "online" in case.procedure.channels:
            case.channel = "online"

    # One interlinked dossier goes all the way (its hand-overs are the point of the mechanism).
    showcase = next((c for c in cases if c.procedure.interlinked), None)
    registered = [c for c in cases if c.channel != "counter" and c is not showcase]
    rng.shuffle(registered)
    refused = quota(0.10, len(registered))
    for case in registered[:refused]:
        case.registration = "refuse"
    online = [c for c in registered[refused:] if c.channel == "online"]
    for case in online[: quota(0.04, len(online)) if len(online) > 2 else 0]:
        case.registration = "withdraw"

    received = [c for c in cases if c.registration == "receive"]
    rng.shuffle(received)
    dealt = [c for c in received if c is not showcase]
    m = len(dealt)
    counts = {"withdrawn": quota(0.05, m), "awaiting_pickup": quota(0.05, m), "hold": quota(0.12, m)}
    position = 0
    for outcome, count in counts.items():
        for case in dealt[position : position + count]:
            case.outcome = outcome
        position += count
    holds = list(HOLDS)
    rng.shuffle(holds)
    for i, case in enumerate(c for c in received if c.outcome == "hold"):
        case.hold = holds[i % len(holds)]
        if case.hold == "awaiting_payment" and not fee_of(case.procedure):
            case.hold = "appraised"

    def pick(pool: list[Case], share: float, base: int | None = None) -> list[Case]:
        pool = list(pool)
        rng.shuffle(pool)
        return pool[: quota(share, len(pool) if base is None else min(base, len(pool)))]

    processing = [c for c in received if c.hold != "received"]
    for case in processing:
        if case.hold == "supplement_requested":
            case.supplement = "agency"
        elif case.hold == "awaiting_payment":
            case.payment = fee_of(case.procedure)
        elif case.hold == "stopped":
            case.stop = True
    for case in pick([c for c in processing if c.hold is None], 0.12, len(processing)):
        case.supplement = "agency"
    for case in processing:
        if case.supplement and local_first_stage(case.procedure) and rng.random() < 0.4:
            case.supplement = "desk"  # found missing at the desk, right after receipt
    for case in pick([c for c in processing if c.hold is None and fee_of(c.procedure)], 0.45):
        case.payment = fee_of(case.procedure)
    for case in pick([c for c in processing if c.hold is None], 0.05, len(processing)):
        case.stop = True
    deciding = [c for c in processing if c.decides]
    for case in pick([c for c in deciding if c.outcome != "withdrawn"], 0.06):
        case.apology = True
    for case in pick([c for c in deciding if c.hold != "signed"], 0.08):
        case.rejected = True

    for case in cases:
        if case.procedure.postal_return:
            case.return_method = "postal" if rng.random() < 0.25 else "counter"
    return sorted(cases, key=lambda c: c.index)


def applicant(rng: random.Random, unit_name: str) -> dict[str, str]:
    name = f"{rng.choice(FAMILY)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}"
    year = rng.randint(1950, 2006)
    century = (0 if year < 2000 else 2) + rng.randint(0, 1)
    id_number = f"079{century}{year % 100:02d}{rng.randint(0, 999_999):06d}"
    return {
        "full_name": name,
        "id_number": id_number,
        "phone": f"09{rng.randint(0, 99_999_999):08d}",
        "address": f"{rng.randint(1, 399)} đường {rng.choice(STREETS)}, {unit_name}",
    }


def choose_communes(units: UnitRegistry, province: str, count: int, rng: random.Random) -> list[str]:
    if province not in units or units.get(province).level != "province":
        source = os.environ.get("UNITS_FILE") or "the default national map"
        raise DemoError(f"no province {province!r} in the unit map ({source})")
    communes = sorted(c for c in units.descendants(province) if units.get(c).level == "commune")
    if not communes:
        raise DemoError(f"province {province} has no communes in the unit map")
    return sorted(rng.sample(communes, min(count, len(communes))))
