"""``make bench``: throughput and latency figures as ratios against baselines measured in the same run.

Not part of ``make test``. Prints a table and writes ``.bench/results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import uuid
from pathlib import Path

import sqlalchemy as sa

from benchmarks import bench_outbox

ROOT = Path(__file__).resolve().parent.parent
AMQP_URI = os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
POSTGRES_ADMIN = os.environ.get("MOTCUA_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


class Postgres:
    """A throw-away PostgreSQL database for one benchmark."""

    def __enter__(self) -> str:
        self.name = f"motcua_bench_{uuid.uuid4().hex[:8]}"
        self.admin = sa.create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
        with self.admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{self.name}"'))
        return sa.engine.make_url(POSTGRES_ADMIN).set(database=self.name).render_as_string(False)

    def __exit__(self, *exc) -> None:
        with self.admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


def _median(runs: int, measure) -> float:
    return statistics.median(measure() for _ in range(runs))


def outbox(count: int, runs: int) -> dict:
    base = _median(runs, lambda: bench_outbox.baseline(AMQP_URI, count))
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

    sqlite_rate = _median(runs, sqlite_run)
    postgres_rate = _median(runs, postgres_run)
    return {
        "events": count,
        "baseline_msgs_per_s": round(base),
        "relay_sqlite_per_s": round(sqlite_rate),
        "relay_postgresql_per_s": round(postgres_rate),
        "ratio_sqlite": round(sqlite_rate / base, 3),
        "ratio_postgresql": round(postgres_rate / base, 3),
        "target_ratio": 0.5,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one run (smoke test)")
    parser.add_argument("--only", action="append", help="run only these benchmarks")
    args = parser.parse_args()
    count, runs = (2000, 1) if args.quick else (20000, 3)
    benches = {"outbox": lambda: outbox(count, runs)}
    results = {}
    for name, bench in benches.items():
        if args.only and name not in args.only:
            continue
        print(f"== {name} ...", flush=True)
        results[name] = bench()
        for key, value in results[name].items():
            print(f"   {key:32} {value}")
    out = ROOT / ".bench" / "results.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
