"""``make bench``: throughput and latency figures as ratios against baselines measured in the same run.

Not part of ``make test``. Prints a table and writes ``.bench/results.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import uuid
from pathlib import Path

from benchmarks import bench_outbox
from benchmarks.common import ROOT, BenchVhost, Postgres

AMQP_URI = ""  # set by main(): a virtual host of the benchmark's own


def outbox(count: int, runs: int) -> dict:
    """The relay on SQLite and PostgreSQL against the pipelined-confirm publisher.

    Each relay run is paired with a baseline run just before it, and the ratio is the median of the
    pairs' ratios: on a machine whose load changes (other work, the broker's own housekeeping), a
    baseline measured minutes earlier would make the ratio measure the load, not the relay.
    """
    scratch = ROOT / ".bench"
    scratch.mkdir(exist_ok=True)

    def sqlite_run() -> float:
        path = scratch / f"outbox-{uuid.uuid4().hex[:6]}.sqlite3"
        try:
            return bench_outbox.relay(AMQP_URI, f"sqlite:///{path}", count)
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

    def postgres_run() -> float:
        with Postgres() as url:
            return bench_outbox.relay(AMQP_URI, url, count)

    pairs: dict[str, list[tuple[float, float]]] = {"sqlite": [], "postgresql": []}
    for _ in range(runs):
        for database, relay in (("sqlite", sqlite_run), ("postgresql", postgres_run)):
            base = bench_outbox.baseline(AMQP_URI, count)
            pairs[database].append((base, relay()))
    figures: dict = {
        "events": count,
        "baseline_msgs_per_s": round(statistics.median(b for runs_ in pairs.values() for b, _ in runs_)),
    }
    for database, measured in pairs.items():
        figures[f"relay_{database}_per_s"] = round(statistics.median(r for _, r in measured))
        figures[f"ratio_{database}"] = round(statistics.median(r / b for b, r in measured), 3)
    figures["target_ratio"] = 0.5
    return figures


def dossier(seconds: int, before: str | None = None) -> dict:
    """End-to-end transitions on SQLite and PostgreSQL, against the raw broker in the same run; on
    PostgreSQL also: the CPU per transition of ``before`` (a git revision) and of this tree, one
    process against two, and the receipts' latency at 75 % of what one process sustains."""
    from benchmarks import bench_dossier

    before = before or bench_dossier.BEFORE
    base = bench_outbox.baseline(AMQP_URI, 20000)
    scratch = ROOT / ".bench"
    scratch.mkdir(exist_ok=True)
    path = scratch / f"dossier-{uuid.uuid4().hex[:6]}.sqlite3"
    try:
        on_sqlite = bench_dossier.transitions(AMQP_URI, f"sqlite:///{path}", seconds=seconds)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    with bench_dossier.source_tree(before) as tree, Postgres() as url:
        on_before = bench_dossier.transitions(AMQP_URI, url, seconds=seconds, root=tree)
    with Postgres() as url:
        on_postgres = bench_dossier.transitions(AMQP_URI, url, seconds=seconds)
        stored = bench_dossier.storage(url)
    with Postgres() as url:
        on_two = bench_dossier.transitions(AMQP_URI, url, seconds=seconds, processes=2)
    # A province's receipts come to many desks: 16 communes in turn, one process and two.
    spread = {}
    for processes in (1, 2):
        with Postgres() as url:
            spread[processes] = bench_dossier.transitions(
                AMQP_URI, url, seconds=seconds, processes=processes, units=16
            )
    one_process = on_postgres["receive"]["per_s"]
    with Postgres() as url:
        paced = bench_dossier.paced_receipts(AMQP_URI, url, rate=0.75 * one_process, seconds=seconds)
    figures: dict = {"baseline_msgs_per_s": round(base), "target_ratio": 0.15}
    for database, results in (
        ("sqlite", on_sqlite),
        ("postgresql", on_postgres),
        (f"postgresql.before_{before}", on_before),
        ("postgresql.2_processes", on_two),
        ("postgresql.16_units", spread[1]),
        ("postgresql.16_units.2_processes", spread[2]),
    ):
        for transition, values in results.items():
            figures[f"{database}.{transition}"] = {**values, "ratio": round(values["per_s"] / base, 4)}
    for transition in ("receive", "start_processing"):
        now_ms = on_postgres[transition]["cpu_ms_per_transition"]
        then_ms = on_before[transition]["cpu_ms_per_transition"]
        figures[f"cpu_ms_per_transition.{transition}"] = {
            "before": then_ms,
            "after": now_ms,
            "after_over_before": round(now_ms / then_ms, 3),
            "target": 0.5,
        }
        figures[f"two_processes_over_one.{transition}"] = _two_over_one(
            on_postgres[transition], on_two[transition]
        )
    figures["two_processes_over_one.receive_at_16_units"] = _two_over_one(
        spread[1]["receive"], spread[2]["receive"]
    )
    figures["postgresql.receive_paced_75pct"] = {**paced, "target_p99_ms": 150}
    figures["postgresql.storage"] = stored
    return figures


def _two_over_one(one: dict, two: dict) -> dict:
    """Two dossier processes against one, with how busy the machine was in each run."""
    return {
        "one_per_s": one["per_s"],
        "two_per_s": two["per_s"],
        "ratio": round(two["per_s"] / one["per_s"], 3),
        "machine_busy_pct": [one["machine_busy_pct"], two["machine_busy_pct"]],
        "target": 1.5,
    }


def queries(count: int) -> dict:
    from benchmarks import bench_queries

    with Postgres() as url:
        return bench_queries.million(AMQP_URI, url, count=count)


def metrics(n_events: int, n_dossiers: int) -> dict:
    """The projection on SQLite and PostgreSQL against one raw-consume baseline; /metrics render time."""
    from benchmarks import bench_metrics

    scratch = ROOT / ".bench"
    scratch.mkdir(exist_ok=True)
    path = scratch / f"metrics-{uuid.uuid4().hex[:6]}.sqlite3"
    try:
        with Postgres() as url:
            projection = bench_metrics.projection_throughput(
                AMQP_URI, {"sqlite": f"sqlite:///{path}", "postgresql": url}, n_events
            )
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    with Postgres() as url:
        render = bench_metrics.metrics_render(url, n_dossiers=n_dossiers)
    return {"projection": projection, "render": render}


def postal(seconds: int, shipments: int) -> dict:
    """Webhooks verified, stored and acked per second vs verify + INSERT in a bare loop; latency at half."""
    from benchmarks import bench_postal

    scratch = ROOT / ".bench"
    scratch.mkdir(exist_ok=True)
    path = scratch / f"postal-{uuid.uuid4().hex[:6]}.sqlite3"
    try:
        on_sqlite = bench_postal.run(AMQP_URI, f"sqlite:///{path}", seconds=seconds, shipments=shipments)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    with Postgres() as url:
        on_postgres = bench_postal.run(AMQP_URI, url, seconds=seconds, shipments=shipments)
    return {"sqlite": on_sqlite, "postgresql": on_postgres}


def esign(seconds: int, calls: int) -> dict:
    """Complete results (both signatures) and verifications per second vs raw RSA-2048/PSS; confirm p99."""
    from benchmarks import bench_esign

    return bench_esign.run(AMQP_URI, seconds, calls)


def outbound(burst: int, rate: float, seconds: float, dossiers: int) -> dict:
    """Webhook deliveries per second vs a bare loop of signed POSTs (100 subscriptions, 10 answering after
    5 s), the fast ones' lag; dossiers synced to the portal per second vs the simulator's ceiling."""
    from benchmarks import bench_outbound

    with Postgres() as url:
        hooks = bench_outbound.webhooks(AMQP_URI, url, burst=burst, rate=rate, seconds=seconds)
    with Postgres() as url:
        portal = bench_outbound.portal(AMQP_URI, url, dossiers=dossiers)
    return {"webhooks": hooks, "portal": portal}


def peak_hour(minutes: float, times: float) -> dict:
    """Every service at once at ``times`` a province's peak for ``minutes`` (bench_peak_hour.py)."""
    from benchmarks import bench_peak_hour

    return bench_peak_hour.run(minutes, times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one run (smoke test)")
    parser.add_argument("--only", action="append", help="run only these benchmarks")
    parser.add_argument(
        "--before", help="git revision whose CPU per transition the dossier figures compare against"
    )
    args = parser.parse_args()
    quick = args.quick
    count, runs = (2000, 1) if quick else (20000, 3)
    benches = {
        # Last in a full run, on its own: every service at once (benchmarks/bench_peak_hour.py).
        "peak-hour": lambda: peak_hour(1.0 if quick else 10.0, 1.0 if quick else 10.0),
        "outbox": lambda: outbox(count, runs),
        "dossier": lambda: dossier(3 if quick else 15, args.before),
        "queries": lambda: queries(20_000 if quick else 1_000_000),
        "metrics": lambda: metrics(2000 if quick else 20000, 20_000 if quick else 1_000_000),
        "postal": lambda: postal(3 if quick else 10, 500 if quick else 3000),
        "esign": lambda: esign(2 if quick else 10, 10 if quick else 100),
        "outbound": lambda: outbound(20 if quick else 40, 2.0, 5 if quick else 15, 30 if quick else 150),
    }
    global AMQP_URI
    results: dict = {}
    with BenchVhost() as AMQP_URI:
        run_all(benches, results, args.only)
    out = ROOT / ".bench" / "results.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"results written to {out}")
    return 0


def run_all(benches: dict, results: dict, only: list[str] | None) -> None:
    # The peak hour runs last: it starts the whole system, and its figures are the final shape's.
    for name, bench in sorted(benches.items(), key=lambda item: item[0] == "peak-hour"):
        if only and name not in only:
            continue
        print(f"== {name} ...", flush=True)
        results[name] = bench()
        for key, value in results[name].items():
            print(f"   {key:32} {json.dumps(value) if isinstance(value, dict) else value}")


if __name__ == "__main__":
    raise SystemExit(main())
