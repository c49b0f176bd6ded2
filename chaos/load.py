"""The chaos suite's steady load, a process of its own: receipts at a fixed rate, each retried with its
``Idempotency-Key`` until a service accepts it.

    python -m chaos.load --url http://127.0.0.1:8100 --url http://127.0.0.1:8101 --rate 5 --stats s.json

Runs until SIGTERM, then writes what it saw to the stats file: receipts accepted, HTTP answers by
status, connection errors, and the longest wait for each kind of answer. A ``500`` is a broken promise
(an outage must answer ``503``); a receipt that is never accepted is not lost by the system (the
oracle is the dossier database, not this count).
"""

from __future__ import annotations

import argparse
import itertools
import json
import signal
import sys
import threading
import time
import uuid
from collections import Counter

import requests

from services.dossier.catalogue_files import load_catalogue
from shared.auth import DEV_SECRET, mint

UNIT = "26740"
# A procedure a commune receives at the counter, as the integration tests pick it.
PROCEDURE = next(p.code for p in load_catalogue() if "commune" in p.levels and "counter" in p.channels)
APPLICANT = {"full_name": "Nguyễn Văn An", "id_number": "079203001234", "phone": "0901234567"}
CONSENT = {"email": "an.nguyen@example.vn", "notification_channels": ["sms", "zalo", "email"]}


class Load:
    def __init__(self, urls: list[str], rate: float, workers: int = 4, consent: bool = False) -> None:
        self.urls = itertools.cycle(urls)
        self.interval = workers / rate
        self.workers = workers
        self.stop = threading.Event()
        self.answers: Counter[str] = Counter()
        self.slowest: dict[str, float] = {}  # the longest wait for each kind of answer, seconds
        self.accepted = 0
        self._lock = threading.Lock()
        token = mint(DEV_SECRET, sub="chaos-load", roles=["desk_officer"], units=[UNIT])
        self.headers = {"Authorization": f"Bearer {token}"}
        # The notifier's chaos rows (chaos/outside.py): the applicant asks to be told by every channel.
        self.applicant = {**APPLICANT, **(CONSENT if consent else {})}

    def _receipt(self, session: requests.Session) -> None:
        key = str(uuid.uuid4())
        body = {"procedure_code": PROCEDURE, "receiving_unit": UNIT, "applicant": self.applicant}
        while not self.stop.is_set():
            url = next(self.urls)
            started = time.monotonic()
            try:
                response = session.post(
                    f"{url}/api/v1/dossiers",
                    json=body,
                    headers={**self.headers, "Idempotency-Key": key},
                    timeout=15,
                )
                outcome = str(response.status_code)
            except requests.RequestException as exc:
                outcome = type(exc).__name__
            with self._lock:
                self.answers[outcome] += 1
                waited = round(time.monotonic() - started, 2)
                self.slowest[outcome] = max(self.slowest.get(outcome, 0.0), waited)
                if outcome == "201":
                    self.accepted += 1
                    return
            self.stop.wait(0.5)

    def _worker(self) -> None:
        session = requests.Session()
        next_at = time.monotonic()
        while not self.stop.is_set():
            self._receipt(session)
            next_at += self.interval
            self.stop.wait(max(0.0, next_at - time.monotonic()))

    def run(self) -> None:
        threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def stats(self) -> dict:
        with self._lock:
            return {"accepted": self.accepted, "answers": dict(self.answers), "slowest": self.slowest}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", action="append", required=True)
    parser.add_argument("--rate", type=float, default=5.0, help="receipts a second")
    parser.add_argument("--stats", required=True, help="JSON file written on SIGTERM")
    parser.add_argument("--consent", action="store_true", help="applicants consent to SMS, Zalo and e-mail")
    args = parser.parse_args(argv)
    load = Load(args.url, args.rate, consent=args.consent)
    signal.signal(signal.SIGTERM, lambda *_: load.stop.set())
    load.run()
    with open(args.stats, "w", encoding="utf-8") as out:
        json.dump(load.stats(), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
