"""The day itself: the officers' actions on every planned dossier through the API, and the rules it shows."""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests

from scripts.demo.client import Api, DemoError, ServiceMissing, Tokens, problem_text
from scripts.demo.planner import Case, applicant
from shared.units import UnitRegistry

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

            def receive() -> requests.Response:
                return self.dossier.request(
                    "POST",
                    "/api/v1/dossiers",
                    token=self.token("desk_officer", case),
                    role="desk_officer",
                    json=body,
                    expect=(201,),
                    key=key,
                )

            case.doc = receive().json()
            case.code = case.doc["code"]
            if self.once("idempotency"):
                again = receive()  # the very same request: the first answer comes back
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
