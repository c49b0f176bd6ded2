"""Receipts on PostgreSQL (and with --projection, the metrics projection), this tree against a
baseline revision, alternated in one run (issue 23).

``python -m benchmarks.bench_pg_path [--before REV] [--repeat 3] [--seconds 10]``: for each repetition,
the baseline and then this tree, each on a fresh database, one dossier process started through
benchmarks/counted_runner.py:
- round trips to PostgreSQL per receipt, the relay's included, with receipts sent one at a time (each
  one its own relay round: the worst case for the relay's share) and under ``wrk`` load;
- under load (receipts to 16 communes, as bench_dossier's spread figures), receipts per second, the
  CPU per receipt by party (service, PostgreSQL, RabbitMQ, wrk, the rest) and HTTP p99.
Alternating the two trees in one run makes the ratio measure the code, not the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

from benchmarks import bench_dossier as bd
from benchmarks.common import ROOT, BenchVhost, Postgres, RunningService
from shared.auth import DEV_SECRET, mint
from shared.units import UnitRegistry

COUNTED = (sys.executable, str(ROOT / "benchmarks" / "counted_runner.py"))


def _round_trips(service: RunningService, path: Path) -> int:
    path.unlink(missing_ok=True)
    service.process.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the counted runner did not report")
        time.sleep(0.02)
    return int(path.read_text())


def one_tree(amqp_uri: str, root: Path, seconds: int, sequential: int = 50) -> dict:
    units = [u.code for u in UnitRegistry.default().children(bd.PROVINCE)[:16]]
    desk = mint(DEV_SECRET, sub="bench-desk", roles=["desk_officer"], units=[bd.PROVINCE])
    bodies = [
        json.dumps({"procedure_code": "1.001193", "receiving_unit": u, "applicant": bd.APPLICANT})
        for u in units
    ]
    report = Path(tempfile.mkdtemp(prefix="motcua-rt-")) / "count"
    os.environ["MOTCUA_ROUND_TRIPS"] = str(report)
    default, RunningService.runner = RunningService.runner, COUNTED
    try:
        with Postgres() as url, bd.RunningDossier(amqp_uri, url, root=root) as service:
            bd._warm(service, desk, bodies[0])
            session = requests.Session()
            headers = {"Authorization": f"Bearer {desk}", "Content-Type": "application/json"}
            start = _round_trips(service, report)
            for i in range(sequential):
                session.post(
                    f"{service.url}/api/v1/dossiers", data=bodies[i % 16], headers=headers, timeout=30
                )
                time.sleep(0.05)  # the relay publishes it before the next one
            time.sleep(1.0)
            one_at_a_time = (_round_trips(service, report) - start) / sequential
            start = _round_trips(service, report)
            loaded = bd._measured(
                service,
                amqp_uri,
                "dossier.received.#",
                bd._succeeded,
                lambda: bd._wrk(
                    f"{service.url}/api/v1/dossiers", bd._lua(desk, None, None, bodies=bodies), seconds, 16
                ),
            )
            loaded.pop("subjects")
            loaded["round_trips_per_receipt"] = round(
                (_round_trips(service, report) - start) / loaded["transitions"], 2
            )
            loaded["round_trips_one_at_a_time"] = round(one_at_a_time, 2)
            return loaded
    finally:
        RunningService.runner = default


def projection(amqp_uri: str, before: Path, repeat: int, n_events: int) -> dict:
    """The metrics projection against a raw consumer measured just before it, the baseline tree's and
    this tree's alternately, on SQLite and PostgreSQL: the median of each one's ratios."""
    import random
    import uuid

    from benchmarks import bench_metrics as bm

    events = bm._dossier_events(n_events, seed=random.randrange(1 << 30))
    bodies = [event.to_json().encode() for event in events]
    ratios: dict[str, list[float]] = {}
    for _ in range(repeat):
        for database in ("sqlite", "postgresql"):
            for label, root in (("before", before), ("after", ROOT)):
                raw = bm.raw_consume(amqp_uri, bodies)
                if database == "sqlite":
                    path = ROOT / ".bench" / f"metrics-{uuid.uuid4().hex[:6]}.sqlite3"
                    path.parent.mkdir(exist_ok=True)
                    try:
                        projected = bm.projected_rate(
                            amqp_uri, f"sqlite:///{path}", events, bodies, root=root
                        )
                    finally:
                        for suffix in ("", "-wal", "-shm"):
                            Path(f"{path}{suffix}").unlink(missing_ok=True)
                else:
                    with Postgres() as url:
                        projected = bm.projected_rate(amqp_uri, url, events, bodies, root=root)
                ratio = projected["projected_events_per_s"] / raw
                ratios.setdefault(f"{database}.{label}", []).append(round(ratio, 3))
                print(database, label, round(raw), json.dumps(projected), round(ratio, 3), flush=True)
    return {key: {"ratios": values, "median": statistics.median(values)} for key, values in ratios.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--before", default="main", help="the baseline revision")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--projection", type=int, metavar="EVENTS", help="the metrics projection instead")
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    if args.projection:
        with BenchVhost() as amqp_uri, bd.source_tree(args.before) as before:
            print(json.dumps(projection(amqp_uri, before, args.repeat, args.projection), indent=1))
        return 0
    with BenchVhost() as amqp_uri, bd.source_tree(args.before) as before:
        for _ in range(args.repeat):
            for label, root in (("before", before), ("after", ROOT)):
                figures = one_tree(amqp_uri, root, args.seconds)
                runs[label].append(figures)
                print(label, json.dumps(figures), flush=True)
    keys = (
        "per_s",
        "cpu_ms_per_transition",
        "http_p99_ms",
        "machine_busy_pct",
        "round_trips_per_receipt",
        "round_trips_one_at_a_time",
    )
    summary = {}
    for label, figures in runs.items():
        summary[label] = {k: statistics.median(f[k] for f in figures) for k in keys}
        parties = {p for f in figures for p in f["cpu_ms_per_transition_by"]}
        summary[label]["cpu_ms_by"] = {
            p: statistics.median(f["cpu_ms_per_transition_by"].get(p, 0) for f in figures)
            for p in sorted(parties)
        }
    summary["after_over_before_service_cpu"] = [
        round(a["cpu_ms_per_transition"] / b["cpu_ms_per_transition"], 3)
        for b, a in zip(runs["before"], runs["after"], strict=True)
    ]
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
