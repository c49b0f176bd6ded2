"""``make demo``: a working day at the one-stop desks of one province, through the HTTP API only.

With ``make run`` going, this drives a few hundred dossiers across a province's communes and its
procedures: receipts at the counter, online registrations checked at the desk (received or
refused), supplement requests and supplements, fees, appraisals, interlinked transfers, decisions (some
rejected with a reason), signing, stamping, results returned at the counter (those to go by post wait
for the postal service's delivery: ``scripts/demo_postal.py`` runs those flows), withdrawals,
stops and resumes, apologies for late results, and some dossiers left in process at the end of the day.
A few deliberately illegal requests show the rules the API enforces (409, 403, 422). It ends with a
summary computed from the API's own answers (and the metrics service's SLA report, when it answers).

    python -m scripts.demo [--dossiers 300] [--communes 12] [--province 79] [--seed 1]
                           [--dossier-url http://127.0.0.1:8000] [--metrics-url http://127.0.0.1:8003]

Tokens are minted locally with ``JWT_SECRET`` (default: the development key), one per role and unit.
The unit map is read like the services read it (``UNITS_FILE``), and the procedure catalogue from the
shipped data files, only to choose communes and procedures; everything else goes over HTTP.
Exit status: 0 on success, 1 when a step failed or a service answered 5xx, 2 when a service is missing.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
import uuid
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import requests
from prometheus_client.parser import text_string_to_metric_families

# shared.auth imports nameko, which imports eventlet: both announce their deprecation on import.
warnings.filterwarnings("ignore", message=r"(?s).*(Eventlet is deprecated|pkg_resources is deprecated)")

from services.dossier.catalogue import Procedure  # noqa: E402
from services.dossier.catalogue_files import load_catalogue  # noqa: E402
from shared.auth import DEV_SECRET, mint  # noqa: E402
from shared.units import UnitRegistry  # noqa: E402

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
DEFAULT_DOSSIER_URL = os.environ.get("MOTCUA_DOSSIER_URL", "http://127.0.0.1:8000")
DEFAULT_METRICS_URL = os.environ.get("MOTCUA_METRICS_URL", "http://127.0.0.1:8003")

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
CHANNELS = ("counter", "online", "postal")
TIMELINESS = ("early", "on_time", "late")

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
# A dossier that came by post is filed by its hand-over record in the postal service (demo_postal.py),
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
REFUSALS = (
    "Thành phần hồ sơ không đúng quy định: thiếu tờ khai theo mẫu",
    "Giấy tờ tùy thân của người nộp đã hết hạn sử dụng",
    "Yêu cầu không thuộc phạm vi giải quyết của thủ tục đã chọn",
)
REJECTIONS = (
    "Không đủ điều kiện theo quy định của pháp luật",
    "Kết quả xác minh không khớp với thông tin trong hồ sơ",
)
STOPS = (
    "Chờ kết quả xác minh của cơ quan có liên quan",
    "Người yêu cầu đề nghị tạm dừng để hoàn thiện giấy tờ",
)
WITHDRAWALS = ("Công dân có đơn xin rút hồ sơ", "Người nộp không còn nhu cầu giải quyết")
APOLOGIES = (
    "Cần thêm thời gian xác minh tại cơ quan phối hợp",
    "Hệ thống chuyên ngành gián đoạn, chưa cập nhật được kết quả",
)


class DemoError(Exception):
    """A step failed: the message says what, where and what to do."""


class ServiceMissing(DemoError):
    """A service the demo needs does not answer."""


# --- the HTTP side --------------------------------------------------------------------------------


def problem_text(response: requests.Response) -> str:
    """The problem detail of an error response, with its field errors; the raw text otherwise."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason
    if not isinstance(body, dict):
        return str(body)[:300]
    text = str(body.get("detail") or body.get("title") or body)
    fields = [
        f"{e.get('pointer')}: {e.get('detail')}" for e in body.get("errors") or [] if isinstance(e, dict)
    ]
    if fields and all(f not in text for f in fields):
        text += f" ({'; '.join(fields)})"
    if body.get("allowed_actions") is not None:
        text += f" [allowed now: {', '.join(body['allowed_actions']) or 'nothing'}]"
    return text


class Api:
    """One service's HTTP API: counts every call, fails loudly on a 5xx or an unexpected status."""

    def __init__(self, name: str, base: str, timeout: float = 30.0) -> None:
        self.name, self.base, self.timeout = name, base.rstrip("/"), timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self.calls = 0
        self.statuses: Counter[int] = Counter()
        self.writes = 0  # successful state changes (each publishes one event)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        role: str = "",
        json: Any = None,
        params: dict | None = None,
        expect: Iterable[int] = (200,),
        key: str | None = None,
    ) -> requests.Response:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        if method == "POST":
            # A retry after a dropped connection reuses the key: the service replays, never doubles.
            headers["Idempotency-Key"] = key or str(uuid.uuid4())
        url = f"{self.base}{path}"
        for attempt in range(3):
            try:
                response = self._session().request(
                    method, url, json=json, params=params, headers=headers, timeout=self.timeout
                )
                break
            except requests.ConnectionError as exc:
                if attempt == 2:
                    raise ServiceMissing(
                        f"{self.name} service not reachable at {self.base} ({method} {path}): {exc}\n"
                        "  start it with `make run` (or pass its address with "
                        f"--{self.name}-url)"
                    ) from exc
                time.sleep(0.5 * (attempt + 1))
            except requests.Timeout as exc:
                raise DemoError(
                    f"{self.name} service did not answer {method} {path} within {self.timeout:.0f} s"
                ) from exc
        with self._lock:
            self.calls += 1
            self.statuses[response.status_code] += 1
            replayed = response.headers.get("Idempotent-Replayed") == "true"
            if method == "POST" and response.status_code in (200, 201) and not replayed:
                self.writes += 1
        as_whom = f" as {role}" if role else ""
        if response.status_code >= 500:
            raise DemoError(
                f"the {self.name} service answered {response.status_code} to {method} {path}{as_whom}: "
                f"{problem_text(response)}\n  (a server error: see the service's log)"
            )
        if response.status_code == 401:
            raise DemoError(
                f"the {self.name} service refused the demo's token ({problem_text(response)}): "
                "set JWT_SECRET to the secret the services run with"
            )
        if response.status_code not in tuple(expect):
            raise DemoError(
                f"{method} {path}{as_whom} answered {response.status_code}, expected "
                f"{'/'.join(map(str, expect))}: {problem_text(response)}"
            )
        return response

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    @property
    def client_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if 400 <= status < 500)


class Tokens:
    """Bearer tokens minted locally: a desk officer per commune; the province's agency, leader, clerk …"""

    def __init__(self, secret: str, province: str) -> None:
        self.secret, self.province = secret, province
        self._cache: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def get(self, role: str, unit: str | None = None) -> str:
        unit = unit or self.province
        with self._lock:
            token = self._cache.get((role, unit))
            if token is None:
                token = mint(self.secret, sub=f"demo-{role}@{unit}", roles=[role], units=[unit])
                self._cache[(role, unit)] = token
            return token


# --- the plan of the day --------------------------------------------------------------------------


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


# --- progress ---------------------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on stderr; on a pipe, one line per phase when it ends."""

    WIDTH = 28

    def __init__(self, label: str, total: int, enabled: bool = True) -> None:
        self.label, self.total, self.done = label, total, 0
        self.enabled = enabled
        self.live = enabled and sys.stderr.isatty()
        self.started = time.monotonic()
        self._drawn = 0.0
        self._lock = threading.Lock()
        self._draw(force=True)

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self.done += n
            self._draw()

    def _line(self) -> str:
        filled = self.WIDTH * self.done // self.total if self.total else self.WIDTH
        bar = "█" * filled + "·" * (self.WIDTH - filled)
        elapsed = time.monotonic() - self.started
        return f"  {self.label:<12} [{bar}] {self.done:>5}/{self.total:<5} {elapsed:6.1f} s"

    def _draw(self, force: bool = False) -> None:
        if not self.live:
            return
        sys.stdout.flush()
        now = time.monotonic()
        if force or now - self._drawn >= 0.1 or self.done == self.total:
            self._drawn = now
            sys.stderr.write("\r" + self._line())
            sys.stderr.flush()

    def close(self) -> None:
        sys.stdout.flush()
        if self.live:
            sys.stderr.write("\r" + self._line() + "\n")
        elif self.enabled:
            sys.stderr.write(self._line() + "\n")
        sys.stderr.flush()


# --- the day ----------------------------------------------------------------------------------------


@dataclass
class Check:
    status: int
    what: str
    answer: str


class Day:
    """Runs the plan against the API, phase by phase, a few officers working in parallel."""

    def __init__(self, args: argparse.Namespace, units: UnitRegistry, cases: list[Case]) -> None:
        self.args, self.units, self.cases = args, units, cases
        self.province = args.province
        self.dossier = Api("dossier", args.dossier_url, args.timeout)
        # Results, approvals and rejections alike, are signed and sealed digitally when esign answers.
        self.esign = Api("esign", args.esign_url, args.timeout) if args.esign_url else None
        self.signed_digitally = 0
        self.tokens = Tokens(args.secret, self.province)
        self.checks: list[Check] = []
        self.stand_ins: Counter[str] = Counter()  # plan agency → transfers sent to the province instead
        self.unplaced: Counter[str] = Counter()  # plan agency with no unit to send the dossier to
        self._shown: set[str] = set()
        self._lock = threading.Lock()
        self._failed = threading.Event()

    # -- plumbing

    def run_phase(self, label: str, items: list[Any], work: Callable[[Any], None]) -> None:
        progress = Progress(label, len(items), enabled=self.args.progress)

        def task(item: Any) -> None:
            if self._failed.is_set():
                return
            try:
                work(item)
            except BaseException:
                self._failed.set()
                raise
            progress.advance()

        try:
            with ThreadPoolExecutor(max_workers=self.args.workers, thread_name_prefix="officer") as pool:
                futures = [pool.submit(task, item) for item in items]
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                for future in futures:
                    future.cancel()
                for future in futures:
                    if future.done() and not future.cancelled() and future.exception() is not None:
                        raise future.exception()
        finally:
            progress.close()

    def once(self, name: str) -> bool:
        """True the first time only: each deliberate rule check is shown once."""
        with self._lock:
            if name in self._shown:
                return False
            self._shown.add(name)
            return True

    def token(self, role: str, case: Case) -> str:
        if role == "desk_officer":
            return self.tokens.get(role, case.commune)
        return self.tokens.get(role)

    def act(
        self, case: Case, action: str, role: str, body: dict | None = None, expect: Iterable[int] = (200,)
    ) -> requests.Response:
        response = self.dossier.request(
            "POST",
            f"/api/v1/dossiers/{case.code}/actions/{action}",
            token=self.token(role, case),
            role=role,
            json=body or {},
            expect=expect,
        )
        if response.status_code == 200:
            case.doc = response.json()
        return response

    def check(
        self,
        case: Case,
        action: str,
        role: str,
        body: dict,
        status: int,
        what: str,
        token: str | None = None,
        tolerated: tuple[int, ...] = (),
    ) -> requests.Response:
        """A request that must be refused: nothing changes, the answer says why."""
        response = self.dossier.request(
            "POST",
            f"/api/v1/dossiers/{case.code}/actions/{action}",
            token=token or self.token(role, case),
            role=role,
            json=body,
            expect=(status, *tolerated),
        )
        if response.status_code == 200:
            case.doc = response.json()
            answer = "accepted: this deployment allows it (see its settings)"
        else:
            answer = problem_text(response)
        with self._lock:
            self.checks.append(Check(response.status_code, what, answer))
        return response

    def rng(self, case: Case, salt: str) -> random.Random:
        return random.Random(f"{self.args.seed}:{case.index}:{salt}")

    # -- the service before the day

    def preflight(self) -> None:
        url = self.dossier.base
        try:
            live = requests.get(f"{url}/health/live", timeout=5)
        except requests.RequestException as exc:
            raise ServiceMissing(
                f"dossier service not reachable at {url}: start it with `make run` "
                f"(or pass --dossier-url)  [{type(exc).__name__}]"
            ) from None
        if live.status_code != 200:
            raise ServiceMissing(
                f"{url}/health/live answered {live.status_code}: is this the dossier service?"
            )
        ready = requests.get(f"{url}/health/ready", timeout=10)
        if ready.status_code != 200:
            raise ServiceMissing(
                f"the dossier service at {url} is not ready (database or broker down): {problem_text(ready)}"
            )
        self.dossier.request(
            "GET",
            "/api/v1/dossiers",
            token=self.tokens.get("auditor"),
            role="auditor",
            params={"page_size": 1},
        )

    # -- phase 1: morning filings

    def file(self, case: Case) -> None:
        rng = self.rng(case, "applicant")
        body = {
            "procedure_code": case.procedure.code,
            "receiving_unit": case.commune,
            "channel": case.channel,
            "return_method": case.return_method,
            "applicant": applicant(rng, self.units.get(case.commune).name),
        }
        if case.channel == "counter":
            key = str(uuid.uuid4())
            response = self.dossier.request(
                "POST",
                "/api/v1/dossiers",
                token=self.token("desk_officer", case),
                role="desk_officer",
                json=body,
                expect=(201,),
                key=key,
            )
            case.doc = response.json()
            case.code = case.doc["code"]
            if self.once("idempotency"):
                again = self.dossier.request(
                    "POST",
                    "/api/v1/dossiers",
                    token=self.token("desk_officer", case),
                    role="desk_officer",
                    json=body,
                    expect=(201,),
                    key=key,
                )
                replayed = again.headers.get("Idempotent-Replayed") == "true"
                if again.json().get("code") != case.code or not replayed:
                    raise DemoError(
                        f"a receipt resent with the same Idempotency-Key created {again.json().get('code')} "
                        f"instead of replaying {case.code}"
                    )
                with self._lock:
                    self.checks.append(
                        Check(
                            201,
                            "the same receipt sent twice (same Idempotency-Key)",
                            f"replayed: the same dossier {case.code}, no second one",
                        )
                    )
            return
        role = "portal"
        response = self.dossier.request(
            "POST", "/api/v1/registrations", token=self.tokens.get(role), role=role, json=body, expect=(201,)
        )
        case.doc = response.json()
        case.code = case.doc["code"]

    # -- phase 2: the desk checks what came in online

    def desk_check(self, case: Case) -> None:
        rng = self.rng(case, "desk")
        if case.registration == "refuse":
            self.act(case, "refuse", "desk_officer", {"reason": rng.choice(REFUSALS)})
        elif case.registration == "withdraw":
            # The applicant withdraws through the portal that filed it.
            response = self.dossier.request(
                "POST",
                f"/api/v1/dossiers/{case.code}/actions/withdraw",
                token=self.tokens.get("portal"),
                role="portal",
                json={"reason": rng.choice(WITHDRAWALS)},
            )
            case.doc = response.json()
        else:
            self.act(case, "receive", "desk_officer")

    # -- phase 3: handling

    def supplement_items(self, case: Case, rng: random.Random) -> list[str]:
        names = [d.name for d in case.procedure.required_documents] or ["Tờ khai theo mẫu"]
        return rng.sample(names, k=min(len(names), rng.randint(1, 2)))

    def ask_supplement(self, case: Case, role: str, rng: random.Random) -> None:
        body = {
            "items": self.supplement_items(case, rng),
            "reason": "Hồ sơ chưa đầy đủ, chưa hợp lệ theo quy định",
        }
        self.act(case, "request_supplement", role, body)

    def give_supplement(self, case: Case) -> None:
        self.act(case, "supplement", "desk_officer", {"note": "Công dân đã nộp bổ sung đủ giấy tờ"})
        if self.once("second_supplement"):
            response = self.check(
                case,
                "request_supplement",
                "handling_officer",
                {"items": ["Giấy tờ khác"], "reason": "Yêu cầu bổ sung lần hai"},
                409,
                f"a second supplement request for {case.code}",
                tolerated=(200,),  # SUPPLEMENT_ONCE=false
            )
            if response.status_code == 200:
                self.act(case, "supplement", "desk_officer", {"note": "Đã bổ sung lần hai"})

    def transfer(self, case: Case) -> bool:
        """Hand over to the plan's next agency; name a unit when the map has none for it."""
        plan, stage = case.doc.get("plan", []), case.doc.get("stage", 0)
        agency = next((s["agency"] for s in plan if s["stage"] == stage + 1), "?")
        reason = "Chuyển cơ quan phối hợp giải quyết (liên thông)"
        response = self.act(case, "transfer", "handling_officer", {"reason": reason}, expect=(200, 422))
        if response.status_code == 200:
            return True
        pointers = {e.get("pointer") for e in response.json().get("errors") or []}
        if pointers != {"/to_unit"}:
            raise DemoError(f"transfer of {case.code} refused: {problem_text(response)}")
        # The map has no unit for this agency (no police/tax/social-insurance units under the province):
        # the province itself stands in for it, unless the dossier is already there.
        if case.doc.get("handling_unit") == self.province:
            with self._lock:
                self.unplaced[agency] += 1
            return False
        self.act(case, "transfer", "handling_officer", {"to_unit": self.province, "reason": reason})
        with self._lock:
            self.stand_ins[agency] += 1
        return True

    def handle(self, case: Case) -> None:
        if case.status != 2 or case.hold == "received":
            return
        rng = self.rng(case, "handling")
        if case.supplement == "desk":
            self.ask_supplement(case, "desk_officer", rng)
            if case.hold == "supplement_requested":
                return
            self.give_supplement(case)  # processing starts with the complete dossier
        else:
            if len(self.args.communes_list) > 1 and self.once("jurisdiction"):
                other = next(c for c in self.args.communes_list if c != case.commune)
                self.check(
                    case,
                    "start_processing",
                    "desk_officer",
                    {},
                    403,
                    f"the desk of commune {other} handing over {case.code} of commune {case.commune}",
                    token=self.tokens.get("desk_officer", other),
                )
            self.act(case, "start_processing", "desk_officer")
        self.act(case, "appraise", "handling_officer", {"opinion": "Hồ sơ đã được kiểm tra, thẩm định"})
        if self.once("early_return"):
            self.check(case, "return", "desk_officer", {}, 409, f"returning {case.code} before it is decided")
        if case.supplement == "agency":
            self.ask_supplement(case, "handling_officer", rng)
            if case.hold == "supplement_requested":
                return
            self.give_supplement(case)
        if case.payment:
            self.act(case, "request_payment", "handling_officer", {"amount_vnd": case.payment})
            if case.hold == "awaiting_payment":
                return
            receipt = f"BL-{case.commune}-{case.index:05d}"
            self.act(case, "record_payment", "desk_officer", {"receipt_number": receipt})
        if case.stop:
            self.act(case, "stop", "handling_officer", {"reason": rng.choice(STOPS)})
            if case.hold == "stopped":
                return
            self.act(case, "resume", "handling_officer", {"note": "Đã có kết quả xác minh"})
        if case.outcome == "withdrawn":
            self.act(case, "withdraw", "desk_officer", {"reason": rng.choice(WITHDRAWALS)})
            return
        while "transfer" in case.doc.get("allowed_actions", ()):
            if not self.transfer(case):
                break
            self.act(case, "appraise", "handling_officer", {"opinion": "Cơ quan phối hợp đã xử lý xong"})
        if case.apology:
            due = datetime.fromisoformat(case.doc["due_at"])
            body = {"reason": rng.choice(APOLOGIES), "new_due_at": (due + timedelta(days=2)).isoformat()}
            self.act(case, "apologize", "handling_officer", body)
        if case.hold == "appraised":
            return
        if case.rejected:
            if self.once("unreasoned_rejection"):
                self.check(
                    case,
                    "decide",
                    "leader",
                    {"decision": "rejected"},
                    422,
                    f"rejecting {case.code} without a reason",
                )
            self.act(case, "decide", "leader", {"decision": "rejected", "reason": rng.choice(REJECTIONS)})
        else:
            self.act(case, "decide", "leader", {"decision": "approved"})
        # A rejection is a result document too: signed and sealed before it is resolved.
        if self.esign is not None:
            self.sign_digitally(case)
            if case.hold == "signed":
                return
        else:
            self.act(case, "sign", "leader")
            if case.hold == "signed":
                return
            self.act(case, "stamp", "clerk")
        self.act(case, "resolve", "clerk")

    def sign_digitally(self, case: Case) -> None:
        """The result document the decision produced, signed by the leader and sealed by the clerk in the
        e-signature service; the dossier records both steps from its events."""
        leader, clerk = self.token("leader", case), self.token("clerk", case)
        path = f"/api/v1/results/{case.code}/signing-request"
        deadline = time.monotonic() + self.args.wait
        while True:
            found = self.esign.request("GET", path, token=leader, role="leader", expect=(200, 404))
            if found.status_code == 200:
                break
            if time.monotonic() > deadline:
                raise DemoError(f"no signing request for {case.code} after {self.args.wait:.0f} s")
            time.sleep(0.2)
        request = found.json()
        steps = [("signature", leader, "leader", "sign")]
        if case.hold != "signed":
            steps.append(("seal", clerk, "clerk", "stamp"))
        for step, token, role, _ in steps:
            answer = self.esign.request(
                "POST",
                f"/api/v1/signing-requests/{request['id']}/{step}",
                token=token,
                role=role,
                json={"document_sha256": request["document_sha256"], "signer_name": f"Demo {role}"},
            )
            request = answer.json()
        wanted = "resolve" if case.hold != "signed" else "stamp"
        while wanted not in case.doc.get("allowed_actions", ()):
            if time.monotonic() > deadline + self.args.wait:
                raise DemoError(f"dossier {case.code} did not record its e-signature steps")
            time.sleep(0.2)
            case.doc = self.dossier.request(
                "GET", f"/api/v1/dossiers/{case.code}", token=self.token("desk_officer", case)
            ).json()
        with self._lock:
            self.signed_digitally += 1

    # -- phase 4: the afternoon: results handed over at the counter

    def hand_back(self, case: Case) -> None:
        # A result to go by post is returned by the operator's delivery only, never at the desk.
        if case.status == 9 and case.outcome == "returned" and case.return_method == "counter":
            self.act(case, "return", "desk_officer")

    # -- the whole day

    def run(self) -> None:
        self.run_phase("filing", self.cases, self.file)
        self.run_phase("desk checks", [c for c in self.cases if c.status == 1], self.desk_check)
        self.run_phase("handling", [c for c in self.cases if c.status == 2], self.handle)
        self.run_phase("returns", [c for c in self.cases if c.status == 9], self.hand_back)


# --- the figures, from the API ---------------------------------------------------------------------


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


# --- the summary ------------------------------------------------------------------------------------


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


# --- main -------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.demo",
        description="A working day of one province's one-stop desks, driven through the HTTP API.",
    )
    parser.add_argument("--dossier-url", default=DEFAULT_DOSSIER_URL, help="env MOTCUA_DOSSIER_URL")
    parser.add_argument("--metrics-url", default=DEFAULT_METRICS_URL, help="env MOTCUA_METRICS_URL")
    parser.add_argument("--province", default=os.environ.get("DEMO_PROVINCE", "79"))
    parser.add_argument("--communes", type=int, default=12, help="how many of its communes (default 12)")
    parser.add_argument("--dossiers", type=int, default=300, help="dossiers filed today (default 300)")
    parser.add_argument("--seed", type=int, default=1, help="same seed, same day (default 1)")
    parser.add_argument("--workers", type=int, default=4, help="officers working in parallel (default 4)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP request")
    parser.add_argument("--wait", type=float, default=30.0, help="seconds to wait for events to go out")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    parser.add_argument(
        "--postal-url",
        default=os.environ.get("MOTCUA_POSTAL_URL"),
        help="env MOTCUA_POSTAL_URL; default: the local postal service when --dossier-url is the local "
        "default too, otherwise the postal flows are skipped",
    )
    parser.add_argument(
        "--operator-url",
        default=os.environ.get("MOTCUA_POSTAL_OPERATOR_URL", "http://127.0.0.1:8011"),
        help="the postal operator simulator (env MOTCUA_POSTAL_OPERATOR_URL)",
    )
    parser.add_argument(
        "--no-postal", dest="postal", action="store_false", help="skip the postal pickups and returns"
    )
    parser.add_argument(
        "--esign-url",
        default=os.environ.get("MOTCUA_ESIGN_URL"),
        help="env MOTCUA_ESIGN_URL; default: the local e-signature service when --dossier-url is the local "
        "default and it answers; otherwise results are signed and stamped by hand (the manual actions)",
    )
    parser.add_argument(
        "--no-esign", dest="esign", action="store_false", help="sign and stamp by hand, not digitally"
    )
    args = parser.parse_args(argv)
    if args.dossiers < 1 or args.communes < 1 or args.workers < 1:
        parser.error("--dossiers, --communes and --workers must be at least 1")
    args.secret = os.environ.get("JWT_SECRET") or DEV_SECRET
    if not args.postal:
        args.postal_url = None
    elif args.postal_url is None and args.dossier_url == DEFAULT_DOSSIER_URL:
        args.postal_url = "http://127.0.0.1:8001"  # beside the local dossier service, as `make run` starts it
    if not args.esign:
        args.esign_url = None
    elif args.esign_url is None and args.dossier_url == DEFAULT_DOSSIER_URL:
        local = "http://127.0.0.1:8002"
        try:
            args.esign_url = local if requests.get(f"{local}/health/live", timeout=2).ok else None
        except requests.RequestException:
            args.esign_url = None
    return args


def choose_communes(units: UnitRegistry, province: str, count: int, rng: random.Random) -> list[str]:
    if province not in units or units.get(province).level != "province":
        source = os.environ.get("UNITS_FILE") or "the default national map"
        raise DemoError(f"no province {province!r} in the unit map ({source})")
    communes = sorted(c for c in units.descendants(province) if units.get(c).level == "commune")
    if not communes:
        raise DemoError(f"province {province} has no communes in the unit map")
    return sorted(rng.sample(communes, min(count, len(communes))))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    try:
        units = UnitRegistry.from_settings(os.environ.get("UNITS_FILE") or None)
        now = datetime.now(UTC)
        catalogue = load_catalogue()
        procedures = []
        for code in catalogue.codes():
            try:
                procedures.append(catalogue.get(code, at=now))
            except KeyError:
                continue  # not in force today
        rng = random.Random(args.seed)
        communes = choose_communes(units, args.province, args.communes, rng)
        args.communes_list = communes
        cases = plan_day(rng, args.dossiers, communes, procedures)
        day = Day(args, units, cases)
        province_name = units.get(args.province).name
        today = now.astimezone(VIETNAM)
        print(
            f"motcua demo — a working day at the one-stop desks of {province_name} ({args.province}), "
            f"{today:%A %d/%m/%Y %H:%M}",
            flush=True,
        )
        print(
            f"  {len(communes)} communes ({', '.join(units.get(c).name for c in communes[:3])}"
            f"{', …' if len(communes) > 3 else ''}) · {len(cases)} dossiers · {len(procedures)} procedures"
            f" in force · seed {args.seed} · {args.workers} officers in parallel",
            flush=True,
        )
        day.preflight()
        metrics = Api("metrics", args.metrics_url, args.timeout)
        sla_note = metrics_answers(metrics)
        sla_before = None
        if sla_note is None:
            try:
                sla_before = sla_report(metrics, day.tokens, args.province, today.date())
            except DemoError as exc:
                sla_note = f"metrics service did not give its SLA report ({exc}): skipped"
        events_before, _ = scrape(day.dossier)

        day.run()
        print("\nRules the API enforced (the requests below were refused on purpose; nothing changed):")
        for check in sorted(day.checks, key=lambda c: c.status):
            print(f"  {check.status}  {check.what}\n       → {check.answer}")
        figures = collect(day)
        writes = day.dossier.writes
        figures.events, figures.events_pending = wait_for_events(
            day.dossier, events_before, writes, args.wait
        )
        if sla_before is not None:
            received = sum(1 for d in figures.dossiers if d.get("received_at"))
            target = sla_before["total"]["received"] + received
            deadline = time.monotonic() + args.wait
            try:
                while True:
                    report = sla_report(metrics, day.tokens, args.province, today.date())
                    if report["total"]["received"] >= target or time.monotonic() > deadline:
                        break
                    time.sleep(0.5)
                figures.sla, figures.sla_before = report, sla_before["total"]["received"]
                if report["total"]["received"] < target:
                    sla_note = "(the metrics service has not caught up with every event yet)"
            except (DemoError, KeyError) as exc:
                figures.sla, sla_note = None, f"metrics service's SLA report failed ({exc}): skipped"
        figures.sla_note = sla_note or ""
        title = f"Summary: {province_name} ({args.province}), {today:%A %d %B %Y}"
        print()
        print(
            render(
                figures,
                title=title,
                day=day,
                catalogue={p.code: p for p in procedures},
                elapsed=time.monotonic() - started,
            )
        )
        if figures.sla is not None and sla_note:
            print(sla_note)
        if day.esign is not None:
            print(
                f"\nE-signature: {day.signed_digitally} results signed by the leader in the e-signature "
                "service (PAdES), the approved ones sealed by the clerk; the dossiers recorded both steps "
                "from its events."
            )
        if args.postal_url:
            from scripts import demo_postal

            try:
                demo_postal.run(
                    day.dossier,
                    day.tokens,
                    communes[0],
                    postal_url=args.postal_url,
                    operator_url=args.operator_url,
                    timeout=args.wait,
                )
            except ServiceMissing as exc:
                print(f"\npostal flows skipped: {str(exc).splitlines()[0]}")
        return 0
    except ServiceMissing as exc:
        print(f"\ndemo stopped: {exc}", file=sys.stderr)
        return 2
    except DemoError as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
