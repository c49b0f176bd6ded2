"""The figures of the day, read back from the API (and the metrics service), and the summary."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from scripts.demo.client import Api, Tokens
from scripts.demo.day import Day
from scripts.demo.planner import CHANNELS, Case
from services.dossier.catalogue import Procedure

# The portal's status codes (docs/domain.md §5), as the API names them, with the portal's wording.
STATUSES: dict[int, tuple[str, str]] = {
    1: ("registered", "Mới đăng ký"),
    2: ("received", "Được tiếp nhận"),
    3: ("refused", "Không được tiếp nhận"),
    4: ("processing", "Đang xử lý"),
    5: ("supplement_requested", "Yêu cầu bổ sung giấy tờ"),
    6: ("awaiting_payment", "Yêu cầu thực hiện nghĩa vụ tài chính"),
    7: ("withdrawn", "Công dân yêu cầu rút hồ sơ"),
    8: ("stopped", "Dừng xử lý"),
    9: ("resolved", "Đã xử lý xong"),
    10: ("returned", "Đã trả kết quả"),
}
FINAL_STATUSES = (3, 7, 10)
IN_PROCESS_STATUSES = (1, 2, 4, 5, 6, 8, 9)


@dataclass
class Figures:
    """What the summary says, every number read back from the services."""

    dossiers: list[dict[str, Any]]
    audits: dict[str, list[dict[str, Any]]]
    events: Counter[str] = field(default_factory=Counter)
    events_pending: int | None = None
    sla: dict[str, Any] | None = None
    sla_before: int = 0  # dossiers the SLA report counted before the day began
    sla_note: str = ""

    def count(self, predicate: Callable[[dict], bool]) -> int:
        return sum(1 for d in self.dossiers if predicate(d))

    def actions(self) -> Counter[str]:
        return Counter(entry["action"] for trail in self.audits.values() for entry in trail)


def scrape(api: Api) -> tuple[Counter[str], int | None]:
    """Events the dossier service has published (by type) and its outbox backlog, from /metrics."""
    response = api.request("GET", "/metrics")
    published: Counter[str] = Counter()
    pending = None
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.labels.get("service") != "dossier":
                continue
            if sample.name == "motcua_events_published_total":
                published[sample.labels.get("type", "?")] += int(sample.value)
            elif sample.name == "motcua_outbox_pending":
                pending = int(sample.value)
    return published, pending


def wait_for_events(
    api: Api, before: Counter[str], expected: int, seconds: float
) -> tuple[Counter[str], int | None]:
    """Wait for the outbox relay to publish the day's events (at least one per change)."""
    deadline = time.monotonic() + seconds
    while True:
        published, pending = scrape(api)
        delta = published - before
        if sum(delta.values()) >= expected or time.monotonic() > deadline:
            return delta, pending
        time.sleep(0.3)


def sla_report(metrics: Api, tokens: Tokens, province: str, day: date) -> dict[str, Any]:
    response = metrics.request(
        "GET",
        "/api/v1/reports/sla",
        token=tokens.get("auditor"),
        role="auditor",
        params={"unit": province, "from": day.isoformat(), "to": day.isoformat(), "group_by": "unit"},
    )
    return response.json()


def metrics_answers(metrics: Api) -> str | None:
    """None when the metrics service answers; otherwise why the SLA part is skipped."""
    try:
        live = requests.get(f"{metrics.base}/health/live", timeout=3)
    except requests.RequestException:
        return f"metrics service not reachable at {metrics.base}: SLA report skipped"
    if live.status_code != 200:
        return f"metrics service at {metrics.base} answered {live.status_code} to /health/live: skipped"
    return None


def collect(day: Day) -> Figures:
    """Read every dossier of the day and its audit trail back, as the province's auditor."""
    token = day.tokens.get("auditor")
    dossiers: dict[str, dict] = {}
    audits: dict[str, list] = {}

    def read(case: Case) -> None:
        dossiers[case.code] = day.dossier.request(
            "GET", f"/api/v1/dossiers/{case.code}", token=token, role="auditor"
        ).json()
        audits[case.code] = day.dossier.request(
            "GET", f"/api/v1/dossiers/{case.code}/audit", token=token, role="auditor"
        ).json()["entries"]

    day.run_phase("read back", day.cases, read)
    return Figures([dossiers[c.code] for c in day.cases], {c.code: audits[c.code] for c in day.cases})


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:5.1f} %" if whole else "    – "


def status_line(status: int, count: int, total: int) -> str:
    name, portal = STATUSES[status]
    return f"  {status:>2} {name:<21}{portal:<38}{count:>6}  {pct(count, total)}"


def duration_text(duration: str) -> str:
    return duration.replace("_", " ")


def seconds_text(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def slowest_procedure(fig: Figures) -> tuple[str, float, int] | None:
    """The procedure whose dossiers wait longest for their result: mean days from filing to appointment."""
    waits: dict[str, list[float]] = defaultdict(list)
    for x in fig.dossiers:
        if x.get("received_at") and x.get("original_due_at"):
            due = datetime.fromisoformat(x["original_due_at"]) - datetime.fromisoformat(x["received_at"])
            waits[x["procedure_code"]].append(due.total_seconds() / 86400)
    if not waits:
        return None
    code = max(sorted(waits), key=lambda c: sum(waits[c]) / len(waits[c]))
    return code, sum(waits[code]) / len(waits[code]), len(waits[code])


def render(
    fig: Figures,
    *,
    title: str,
    day: Day,
    catalogue: dict[str, Procedure],
    elapsed: float,
) -> str:
    d = fig.dossiers
    total = len(d)
    out: list[str] = []
    add = out.append
    rule = "═" * 96
    add(rule)
    add(f" {title}")
    add(rule)
    add(f"Dossiers by status at the end of the day{'':<40}{total:>6}")
    statuses = Counter(x["status"] for x in d)
    for status in sorted(statuses):
        add(status_line(status, statuses[status], total))
    closed = sum(statuses[s] for s in FINAL_STATUSES)
    add(f"  closed for good (refused, withdrawn, returned): {closed} · still open: {total - closed}")
    add("")

    channels = Counter(x["channel"] for x in d)
    shares = (f"{c} {channels[c]} ({pct(channels[c], total).strip()})" for c in CHANNELS)
    add("By channel: " + " · ".join(shares))
    desks = Counter(x["receiving_unit"] for x in d)
    if len(desks) > 1:
        (busiest, most), (quietest, fewest) = desks.most_common()[0], desks.most_common()[-1]
        add(
            f"By desk: {len(desks)} communes — busiest {day.units.get(busiest).name} ({most}), "
            f"quietest {day.units.get(quietest).name} ({fewest})"
        )
    returned = [x for x in d if x["status"] == 10]
    by_post = sum(1 for x in returned if x["return_method"] == "postal")
    add(f"Results handed over: {len(returned)} — {len(returned) - by_post} at the counter, {by_post} by post")
    decided = [x for x in d if x.get("timeliness")]
    timeliness = Counter(x["timeliness"] for x in decided)
    apologised = sum(1 for x in decided if x.get("apology_count"))
    on_time = timeliness["early"] + timeliness["on_time"]
    add(
        f"Timeliness of the {len(decided)} decided: early {timeliness['early']} · on time "
        f"{timeliness['on_time']} · late {timeliness['late']} "
        f"(on time or early: {pct(on_time, len(decided)).strip()};"
        f" {apologised} late with an apology, Form 04)"
    )
    open_ = [x for x in d if x["status"] in IN_PROCESS_STATUSES]
    overdue = sum(1 for x in open_ if x.get("overdue"))
    add(f"Still open at close of day: {len(open_)} — overdue {overdue}")

    actions = fig.actions()
    transferred = sum(1 for trail in fig.audits.values() if any(e["action"] == "transfer" for e in trail))
    add(f"Interlinked transfers: {actions['transfer']} hand-overs between agencies on {transferred} dossiers")
    if day.stand_ins:
        add(
            "  (the unit map has no "
            + ", ".join(sorted(day.stand_ins))
            + f" unit under {day.province}: the province stood in for it in {sum(day.stand_ins.values())})"
        )
    if day.unplaced:
        add(
            f"  ({sum(day.unplaced.values())} hand-overs to {', '.join(sorted(day.unplaced))} had no unit"
            f" to go to and were skipped; a UNITS_FILE with agencies, e.g. {day.province}-CA,"
            f" {day.province}-CT, {day.province}-BHXH, places them)"
        )
    waiting_supplement = statuses[5]
    add(
        f"Supplements (Form 02): {actions['request_supplement']} requested — "
        f"{actions['supplement']} supplied, {waiting_supplement} waiting"
    )
    add(
        f"Fees: {actions['request_payment']} payment requests — {actions['record_payment']} paid, "
        f"{statuses[6]} waiting"
    )
    rejected = sum(1 for x in d if x.get("decision") == "rejected")
    add(
        f"Refused at the desk: {statuses[3]} · withdrawn: {statuses[7]} · rejected with a reason: {rejected}"
        f" · stopped {actions['stop']} (resumed {actions['resume']})"
    )
    slowest = slowest_procedure(fig)
    if slowest is not None:
        code, days, count = slowest
        procedure = catalogue.get(code)
        name = procedure.name_en if procedure else code
        legal = f" (by law: {duration_text(procedure.duration)})" if procedure else ""
        counted = [x for x in d if x["procedure_code"] == code and x.get("received_at")]
        steps = [len(fig.audits[x["code"]]) for x in counted]
        spent = [
            (
                datetime.fromisoformat(x["resolved_at"]) - datetime.fromisoformat(x["received_at"])
            ).total_seconds()
            for x in d
            if x["procedure_code"] == code and x.get("resolved_at") and x.get("received_at")
        ]
        handled = f", decided in {seconds_text(sum(spent) / len(spent))} here" if spent else ""
        add(
            f"Slowest procedure: {code} {name} — result due {days:.1f} days after filing{legal}; "
            f"{count} {'dossier' if count == 1 else 'dossiers'}, {sum(steps) / len(steps):.1f} steps"
            f"{' each' if count > 1 else ''}"
            f"{handled}"
        )
    published = sum(fig.events.values())
    top = " · ".join(f"{t.rsplit('.', 1)[-1]} {n}" for t, n in fig.events.most_common(5))
    pending = "" if not fig.events_pending else f"; {fig.events_pending} still waiting in the outbox"
    add(f"Events published: {published} ({top}){pending}")
    calls = day.dossier.calls
    add(
        f"API: {calls} requests in {seconds_text(elapsed)} ({calls / elapsed:.0f}/s), "
        f"{day.dossier.client_errors} expected 4xx, {day.dossier.server_errors} server errors"
    )
    add("")
    if fig.sla is not None:
        t = fig.sla["total"]

        def rate(name: str) -> str:
            value = t.get(name)
            return "–" if value is None else f"{100 * value:.1f} %"

        score = t.get("progress_score")
        name = fig.sla.get("unit_name", day.province)
        add(f"SLA report of the metrics service — {name}, dossiers received {fig.sla['from']}:")
        add(
            f"  received {t['received']} ({t['received'] - fig.sla_before} by this run)"
            f" · decided {t['decided']} · on-time rate {rate('on_time_rate')} · "
            f"online share {rate('online_share')} · postal share {rate('postal_share')} · progress score "
            + ("–" if score is None else f"{score:.2f}/20")
        )
    elif fig.sla_note:
        add(fig.sla_note)
    return "\n".join(out)
