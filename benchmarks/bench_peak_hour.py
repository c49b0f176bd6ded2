"""A mixed peak hour: every service at once, at a multiple of a province's peak, on PostgreSQL.

    python -m benchmarks.bench_peak_hour                       # 10 minutes at ten times the peak
    python -m benchmarks.bench_peak_hour --minutes 2 --times 1

The system and the load are the soak's (chaos/soak.py): ``make run``'s processes on a PostgreSQL server
and a vhost of the run's own, ``make demo``'s day in rounds of dossiers (filings at the desk and online,
the handling officers' actions, the leader's signature and the clerk's seal, pickups by the postal
operator and its webhooks, the national portal's sync, a webhook subscriber), citizens' lookups and
Prometheus's scrapes. A province's peak (docs/benchmarks-and-capacity.md) is ≈ 3.5 dossiers a second
through each step, 12,600 an hour, and a citizen's lookup per dossier; ``--times`` multiplies both.

What it reports, from the services' own instruments and ``/proc``:
- per route (service, method, route template): requests, and p50/p99 as the upper bound of the
  ``motcua_http_request_duration_seconds`` bucket the quantile falls in (what Prometheus would show,
  without its interpolation);
- errors by kind: answers by status class per service, and the load's own outcomes (demo rounds, lookups,
  scrapes, rounds skipped because the system fell behind);
- event lag: p99 of ``motcua_event_handling_seconds`` per queue, and the peak of every outbox's unpublished
  rows and every queue's depth, sampled every few seconds;
- the CPU by party: the services, the outside parties' stand-ins (simulators and the test TSA),
  PostgreSQL, RabbitMQ and the load generator (the demo rounds, this process), and the machine's busy
  share — per dossier filed.

What the system reached is the figure: on this 2-core machine ten times a province's peak is far beyond
what one box can sign (docs/benchmarks-and-capacity.md), and the report says where it fell behind.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.common import GROUPS, ROOT, cpu_seconds, machine_cpu
from chaos.soak import SERVICES, Load, Report, SoakSettings, System

PEAK_DOSSIERS_PER_HOUR = 3.5 * 3600
STAND_INS = {"tsa", "postal_operator", "national_portal", "payment_platform"}


# -- the services' instruments ------------------------------------------------------------------------


def scrape(system: System) -> dict[tuple, float]:
    """Every histogram bucket and request counter of every service: (name, labels…) -> value."""
    values: dict[tuple, float] = {}
    for service in SERVICES:
        try:
            text = requests.get(f"{system.url(service)}/metrics", timeout=30).text
        except requests.RequestException:
            continue
        for family in text_string_to_metric_families(text):
            if family.name not in (
                "motcua_http_request_duration_seconds",
                "motcua_http_requests",
                "motcua_event_handling_seconds",
            ):
                continue
            for sample in family.samples:
                if sample.name.endswith(("_bucket", "_total")):
                    values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def quantile_bound(buckets: dict[float, float], q: float) -> float | None:
    """The upper bound of the bucket in which the q-quantile falls (cumulative counts by ``le``)."""
    total = buckets.get(float("inf"), 0.0)
    if total <= 0:
        return None
    for bound in sorted(buckets):
        if buckets[bound] >= q * total:
            return bound
    return None


def histograms(
    before: dict, after: dict, name: str, keys: tuple[str, ...]
) -> dict[tuple, dict[float, float]]:
    """The increase of each bucket of histogram ``name`` between two scrapes, grouped by ``keys``."""
    grouped: dict[tuple, dict[float, float]] = defaultdict(dict)
    for (sample, labels), value in after.items():
        if sample != f"{name}_bucket":
            continue
        label = dict(labels)
        group = tuple(label.get(k, "") for k in keys)
        bound = float(label["le"])
        grouped[group][bound] = grouped[group].get(bound, 0.0) + value - before.get((sample, labels), 0.0)
    return grouped


def statuses(before: dict, after: dict, by_route: bool = False) -> dict[str, Counter]:
    """Answers between two scrapes per service by status class; ``by_route``: every answer that is not
    a 2xx, per service, method and route, by its status."""
    found: dict[str, Counter] = defaultdict(Counter)
    for (sample, labels), value in after.items():
        if sample != "motcua_http_requests_total":
            continue
        label = dict(labels)
        increase = int(value - before.get((sample, labels), 0.0))
        if not increase:
            continue
        if not by_route:
            found[label["service"]][f"{label['status'][0]}xx"] += increase
        elif not label["status"].startswith("2"):
            found[f"{label['service']} {label['method']} {label['route']}"][label["status"]] += increase
    return found


# -- the CPU by party ---------------------------------------------------------------------------------


def party_cpu(system: System) -> dict[str, float]:
    """CPU seconds so far of each party's processes (services, stand-ins, PostgreSQL, RabbitMQ)."""
    spent: dict[str, float] = Counter()
    for name, pid in system.processes().items():
        party = "stand-ins" if name in STAND_INS or name.endswith("_messaging") else "services"
        try:
            spent[party] += cpu_seconds(pid)
        except (OSError, IndexError, ValueError):
            continue
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            group = GROUPS.get((entry / "comm").read_text().strip())
            if group in ("postgresql", "rabbitmq"):
                spent[group] += cpu_seconds(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    times = os.times()
    # The demo rounds are this process's children: their time counts once they have been waited for.
    spent["load generator"] = times.user + times.system + times.children_user + times.children_system
    return dict(spent)


# -- the run ------------------------------------------------------------------------------------------


class Peaks:
    """The highest outbox and queue depths seen, sampled every ``seconds`` in a thread of its own."""

    def __init__(self, system: System, seconds: float) -> None:
        self.system, self.seconds = system, seconds
        self.peaks: dict[str, float] = Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(self.seconds):
            try:
                sample = self.system.sample()
            except Exception:  # noqa: BLE001 - a sample missed under load is not the run's failure
                continue
            for name, value in sample.items():
                if name.startswith(("outbox ", "queue ")):
                    self.peaks[name] = max(self.peaks[name], value)

    def finish(self) -> dict[str, float]:
        self.stop.set()
        self.thread.join(timeout=60)
        return {name: value for name, value in sorted(self.peaks.items()) if value}


def run(minutes: float, times: float, out=sys.stdout) -> dict:
    settings = SoakSettings(
        minutes=minutes,
        dossiers_per_hour=PEAK_DOSSIERS_PER_HOUR * times,
        # Rounds of 10 dossiers, at most chaos.soak.MAX_ROUNDS_AT_ONCE under way: a round due when that
        # many are still running is skipped and counted (the system, or the load generator, fell behind).
        round_dossiers=10,
        lookups_per_second=3.5 * times,
        scrape_seconds=15.0,
    )
    workdir = Path(tempfile.mkdtemp(prefix="motcua-peak-"))
    out.write(f"peak hour: logs in {workdir}\n")
    out.flush()
    system = System(workdir)
    report = Report(minutes)
    try:
        system.start()
        before, cpu_before, machine_before = scrape(system), party_cpu(system), machine_cpu()
        with system.engines["dossier"].connect() as connection:
            filed_before = connection.exec_driver_sql("SELECT count(*) FROM dossiers").scalar()
        started = time.monotonic()
        peaks = Peaks(system, 5.0)
        load = Load(system, settings, report)
        time.sleep(minutes * 60)
        # The window ends here: what the rounds still under way do afterwards is not counted.
        elapsed = time.monotonic() - started
        after, cpu_after, machine_after = scrape(system), party_cpu(system), machine_cpu()
        with system.engines["dossier"].connect() as connection:
            filed = connection.exec_driver_sql("SELECT count(*) FROM dossiers").scalar() - filed_before
        lag = peaks.finish()
        load.finish()
    finally:
        system.stop()
    busy, total = (a - b for a, b in zip(machine_after, machine_before, strict=True))
    spent = {party: cpu_after.get(party, 0.0) - cpu_before.get(party, 0.0) for party in cpu_after}
    spent["other"] = busy - sum(spent.values())
    routes = {}
    for (service, method, route), buckets in histograms(
        before, after, "motcua_http_request_duration_seconds", ("service", "method", "route")
    ).items():
        count = buckets.get(float("inf"), 0.0)
        if count:
            routes[f"{service} {method} {route}"] = {
                "requests": int(count),
                "p50_le_s": quantile_bound(buckets, 0.5),
                "p99_le_s": quantile_bound(buckets, 0.99),
            }
    events = {}
    for (service, queue), buckets in histograms(
        before, after, "motcua_event_handling_seconds", ("service", "queue")
    ).items():
        if buckets.get(float("inf"), 0.0):
            events[f"{service} {queue}"] = {
                "events": int(buckets[float("inf")]),
                "p99_le_s": quantile_bound(buckets, 0.99),
            }
    return {
        "minutes": minutes,
        "times_the_peak": times,
        "asked_dossiers_per_s": round(settings.dossiers_per_hour / 3600, 2),
        "filed_dossiers_per_s": round(filed / elapsed, 2),
        "filed": filed,
        "load": {
            "rounds": dict(report.rounds),
            "lookups": dict(report.lookups),
            "scrapes": dict(report.scrapes),
        },
        "answers_by_service": {
            service: dict(counts) for service, counts in sorted(statuses(before, after).items())
        },
        "not_2xx_by_route": {
            route: dict(counts) for route, counts in sorted(statuses(before, after, by_route=True).items())
        },
        "routes": dict(sorted(routes.items())),
        "event_handling": dict(sorted(events.items())),
        "backlog_peaks": lag,
        "machine_busy_pct": round(100 * busy / total, 1) if total else None,
        "cpu_ms_per_dossier_by": {
            party: round(seconds * 1000 / filed, 1) if filed else None
            for party, seconds in sorted(spent.items())
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--times", type=float, default=10.0, help="multiples of a province's peak")
    parser.add_argument("--output", default=str(ROOT / ".bench" / "peak-hour.json"))
    args = parser.parse_args(argv)
    figures = run(args.minutes, args.times)
    Path(args.output).parent.mkdir(exist_ok=True)
    Path(args.output).write_text(json.dumps(figures, indent=2, ensure_ascii=False))
    print(json.dumps(figures, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
