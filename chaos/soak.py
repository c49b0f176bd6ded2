"""``make soak``: a province's busiest day, compressed into an hour at a steady rate, on PostgreSQL.

    make soak                                  # 60 minutes (SOAK_MINUTES=60)
    make soak SOAK_MINUTES=15 SOAK_ARGS="--dossiers-per-hour 900"

The whole system runs as ``make run`` starts it (scripts/run.py: every service, the postal operator and
national portal simulators, the test TSA), on a PostgreSQL server of the run's own (one database per
service) and a throw-away vhost on the local broker. The load is the day of ``make demo`` in rounds of
a few dossiers at a steady rate — filings, the desk's and the handling officers' actions, digital
signatures, pickups by the postal operator and its webhooks, the national portal's sync and a webhook
subscriber — beside citizens' lookups and Prometheus's scrapes of every service.

Every interval (a minute; shorter for a short run, so it still has at least ten samples) the run samples
the resident memory and open descriptors of every process, the database connections per database, each
outbox's unpublished rows and each queue's messages. After the load it waits for the backlog to drain
(at most a minute), compares the metrics projection with the dossier database (lost, double-counted),
and judges each series after the warm-up: the growth its least-squares slope predicts over the run
must stay within the series' tolerance — a leak grows with the load, a cache levels off.
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import requests
import sqlalchemy as sa

from chaos.run import Settings as ChaosSettings
from chaos.run import Vhost, free_port
from scripts.run import services as run_services
from shared.auth import DEV_SECRET, mint
from tests.support.private_postgres import PrivatePostgres

ROOT = Path(__file__).resolve().parent.parent
# Every service make run starts: each gets a database and a port of the run's own.
SERVICES = tuple(run_services())
PROVINCE = "79"
# How much a series may grow over the run, as its slope after the warm-up predicts, and stay bounded.
TOLERANCE = {
    "rss MiB": lambda first: max(48.0, 0.25 * first),
    "fds": lambda first: 16.0,
    "db connections": lambda first: 6.0,
    "outbox": lambda first: 100.0,
    "queue": lambda first: 100.0,
}
DRAIN_SECONDS = 60.0
# The outside parties' stand-ins keep every request they get (their /_control/received is what the tests
# read), so their memory grows with the load by design: shown, not judged. The test TSA keeps nothing.
STAND_INS = (
    "national_portal",
    "postal_operator",
    "payment_platform",
    "sms_messaging",
    "zalo_messaging",
    "email_messaging",
)
# Rounds of the day running together at most; one more due is skipped (and counted): the system fell behind.
MAX_ROUNDS_AT_ONCE = 4


@dataclass
class SoakSettings:
    minutes: float = 60.0
    # The busiest day of a large province's one-stop desks, compressed into the run's hour.
    dossiers_per_hour: float = 600.0
    round_dossiers: int = 10
    lookups_per_second: float = 1.0
    scrape_seconds: float = 15.0
    warmup_fraction: float = 0.2

    @property
    def sample_seconds(self) -> float:
        return min(60.0, self.minutes * 60.0 / 10)


@dataclass
class Sample:
    at: float
    series: dict[str, float]


@dataclass
class Verdict:
    series: str
    first: float
    last: float
    peak: float
    growth: float  # what the slope after the warm-up predicts over the measured window
    tolerance: float

    @property
    def judged(self) -> bool:
        return not (self.series.startswith("rss MiB ") and self.series.removeprefix("rss MiB ") in STAND_INS)

    @property
    def bounded(self) -> bool:
        return self.growth <= self.tolerance or not self.judged


@dataclass
class Report:
    minutes: float
    samples: list[Sample] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    rounds: Counter[str] = field(default_factory=Counter)
    lookups: Counter[str] = field(default_factory=Counter)
    scrapes: Counter[str] = field(default_factory=Counter)
    dossiers: int = 0
    lost: int = 0
    double_counted: int = 0
    drain_seconds: float | None = None

    @property
    def ok(self) -> bool:
        drained = self.drain_seconds is not None and self.drain_seconds <= DRAIN_SECONDS
        return (
            drained and self.lost == 0 and self.double_counted == 0 and all(v.bounded for v in self.verdicts)
        )


# -- the system -------------------------------------------------------------------------------------------


class System:
    """``scripts/run.py`` on a private PostgreSQL server and a throw-away vhost, on free ports."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.pg = PrivatePostgres()
        self.vhost = Vhost(ChaosSettings())
        self.amqp = f"amqp://guest:guest@127.0.0.1:5672/{quote(self.vhost.name, safe='')}"
        self.urls = {service: self.pg.create_database(service) for service in SERVICES}
        self.engines = {s: sa.create_engine(url, pool_size=1) for s, url in self.urls.items()}
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "MOTCUA_ENV": "development",
            "MOTCUA_REPLICAS": "1",
            "AMQP_URI": self.amqp,
            # Per-service broker users are global to the broker: not made here (AMQP_URI serves all).
            "MOTCUA_BROKER_API": f"http://guest:guest@127.0.0.1:{free_port()}",
            "ESIGN_TSA_PORT": str(free_port()),
            "ESIGN_PKI_DIR": str(workdir / "pki"),
            "ESIGN_STORE_DIR": str(workdir / "documents"),
            "SIMULATOR_ADDRESS": f"127.0.0.1:{free_port()}",
            "PORTAL_SIMULATOR_ADDRESS": f"127.0.0.1:{free_port()}",
            "SMS_SIMULATOR_ADDRESS": f"127.0.0.1:{free_port()}",
            "ZALO_SIMULATOR_ADDRESS": f"127.0.0.1:{free_port()}",
            "EMAIL_SIMULATOR_ADDRESS": f"127.0.0.1:{free_port()}",
            "PAYMENT_SIMULATOR_ADDRESS": f"127.0.0.1:{free_port()}",
            # Citizens look up from many addresses; here from one.
            "LOOKUP_PER_MINUTE": "100000",
            "LOG_LEVEL": "WARNING",
        }
        for service in SERVICES:
            self.env[f"{service.upper()}_DATABASE_URL"] = self.urls[service]
            self.env[f"{service.upper()}_ADDRESS"] = f"127.0.0.1:{free_port()}"
        self.env["DOSSIER_URL"] = self.url("dossier")
        self.env["POSTAL_OPERATOR_URL"] = f"http://{self.env['SIMULATOR_ADDRESS']}"
        self.env["PORTAL_URL"] = f"http://{self.env['PORTAL_SIMULATOR_ADDRESS']}"
        self.env["ESIGN_PUBLIC_URL"] = self.url("esign")
        self.env["PAYMENT_PLATFORM_URL"] = f"http://{self.env['PAYMENT_SIMULATOR_ADDRESS']}"
        self.process: subprocess.Popen | None = None

    def url(self, service: str) -> str:
        return f"http://{self.env[f'{service.upper()}_ADDRESS']}"

    def start(self, timeout: float = 300.0) -> None:
        log = open(self.workdir / "run.log", "w", encoding="utf-8")  # noqa: SIM115 - the child owns it
        self.process = subprocess.Popen(
            [sys.executable, "scripts/run.py"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "motcua is running" in (self.workdir / "run.log").read_text(encoding="utf-8"):
                return
            if self.process.poll() is not None:
                break
            time.sleep(1.0)
        raise RuntimeError(f"make run did not come up; see {self.workdir / 'run.log'}")

    def processes(self) -> dict[str, int]:
        """The system's processes by name (a service, a simulator, the TSA): scripts/run.py's children."""
        found = {}
        for pid in _children(self.process.pid):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            words = [w.decode() for w in argv if w]
            if "shared.runner" in words:
                name = words[words.index("shared.runner") + 1]
            elif "-m" in words:
                name = words[words.index("-m") + 1].rsplit(".", 1)[-1]
                if "--gateway" in words:  # one messaging simulator per gateway
                    name = f"{words[words.index('--gateway') + 1]}_{name}"
            else:
                name = Path(words[-1]).stem
            found[name] = pid
        return found

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        for engine in self.engines.values():
            engine.dispose()
        self.pg.destroy()
        self.vhost.delete()

    # -- what is sampled ----------------------------------------------------------------------------------

    def sample(self) -> dict[str, float]:
        series: dict[str, float] = {}
        for name, pid in self.processes().items():
            try:
                series[f"rss MiB {name}"] = _rss_kib(pid) / 1024
                series[f"fds {name}"] = len(os.listdir(f"/proc/{pid}/fd"))
            except (FileNotFoundError, ProcessLookupError):
                continue  # it ended between the listing and the read: the run will say so
        with self.engines["dossier"].connect() as connection:
            for database, count in connection.execute(
                sa.text(
                    "SELECT datname, count(*) FROM pg_stat_activity WHERE datname = ANY(:names) "
                    "GROUP BY datname"
                ),
                {"names": list(SERVICES)},
            ):
                # minus this sampler's own connection
                series[f"db connections {database}"] = count - (1 if database == "dossier" else 0)
        for service, engine in self.engines.items():
            table = f"{service}_outbox"
            with engine.connect() as connection:
                if sa.inspect(connection).has_table(table):
                    series[f"outbox {service}"] = connection.execute(
                        sa.text(f"SELECT count(*) FROM {table} WHERE published_at IS NULL")  # noqa: S608
                    ).scalar()
            engine.dispose()  # the sampler's connection is not one of the system's
        api = ChaosSettings().rabbit_api.rstrip("/")
        queues = requests.get(f"{api}/api/queues/{quote(self.vhost.name, safe='')}", timeout=10).json()
        for queue in queues:
            if queue["name"].endswith(".dead-letter") or queue["name"] == "egov.events.unrouted":
                continue
            series[f"queue {queue['name']}"] = queue.get("messages", 0)
        return series

    def backlog(self) -> float:
        return sum(v for k, v in self.sample().items() if k.startswith(("outbox ", "queue ")))

    def figures(self) -> tuple[int, int, int]:
        """Dossiers in the dossier database, those the metrics projection lacks, receipts counted twice."""
        with self.engines["dossier"].connect() as connection:
            oracle = set(connection.execute(sa.text("SELECT code FROM dossiers")).scalars())
        with self.engines["metrics"].connect() as connection:
            known = set(connection.execute(sa.text("SELECT code FROM metrics_dossier_facts")).scalars())
            counted = connection.execute(
                sa.text("SELECT coalesce(sum(received), 0) FROM metrics_totals")
            ).scalar()
        return len(oracle), len(oracle - known), max(0, int(counted) - len(known)) + len(known - oracle)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text()
        found += [int(child) for child in text.split()]
    return found


def _rss_kib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return float(line.split()[1])
    raise ProcessLookupError(pid)


# -- the load ---------------------------------------------------------------------------------------------


class Load:
    """The day in rounds of ``make demo``, citizens' lookups and Prometheus's scrapes, until stopped."""

    def __init__(self, system: System, settings: SoakSettings, report: Report) -> None:
        self.system, self.settings, self.report = system, settings, report
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._rounds, daemon=True),
            threading.Thread(target=self._lookups, daemon=True),
            threading.Thread(target=self._scrapes, daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _rounds(self) -> None:
        s = self.system
        interval = self.settings.round_dossiers / self.settings.dossiers_per_hour * 3600
        command = [
            sys.executable,
            "-m",
            "scripts.demo",
            "--dossier-url",
            s.url("dossier"),
            "--metrics-url",
            s.url("metrics"),
            "--postal-url",
            s.url("postal"),
            "--operator-url",
            s.env["POSTAL_OPERATOR_URL"],
            "--esign-url",
            s.url("esign"),
            "--outbound-url",
            s.url("outbound"),
            "--portal-simulator-url",
            s.env["PORTAL_URL"],
            "--province",
            PROVINCE,
            "--communes",
            "3",
            "--dossiers",
            str(self.settings.round_dossiers),
            "--workers",
            "2",
            # The soak judges growth, not latency: a loaded machine may take a while to sign.
            "--wait",
            "60",
            "--no-progress",
        ]
        next_at, seed = time.monotonic(), 0
        running: list[subprocess.Popen] = []
        postal_round: subprocess.Popen | None = None
        log = open(s.workdir / "rounds.log", "a", encoding="utf-8")  # noqa: SIM115 - closed below
        with log:
            while not self.stop.is_set() or running:
                for process in [p for p in running if p.poll() is not None]:
                    running.remove(process)
                    self.report.rounds["ok" if process.returncode == 0 else f"exit {process.returncode}"] += 1
                if not self.stop.is_set() and time.monotonic() >= next_at:
                    # A round takes longer than the interval: rounds overlap, so the rate stays steady.
                    if len(running) < MAX_ROUNDS_AT_ONCE:
                        seed += 1
                        # The operator simulator plays its queued behaviours in order to whoever orders
                        # next: one round at a time does the postal flows, or rounds take each other's.
                        postal = postal_round is None or postal_round.poll() is not None
                        argv = [*command, "--seed", str(seed), *(() if postal else ("--no-postal",))]
                        running.append(subprocess.Popen(argv, cwd=ROOT, env=s.env, stdout=log, stderr=log))
                        postal_round = running[-1] if postal else postal_round
                    else:
                        self.report.rounds["skipped: the system fell behind"] += 1
                    next_at += interval
                time.sleep(0.5)

    def _lookups(self) -> None:
        base = self.system.url("dossier")
        token = mint(DEV_SECRET, sub="soak-desk", roles=["desk_officer"], units=["26740"])
        body = {
            "procedure_code": _COMMUNE_PROCEDURE,
            "receiving_unit": "26740",
            "applicant": {"full_name": "Trần Thị Bình", "id_number": "079203001234", "phone": "0901234567"},
        }
        session, receipts = requests.Session(), []
        while len(receipts) < 10 and not self.stop.is_set():
            try:
                answer = session.post(
                    f"{base}/api/v1/dossiers",
                    json=body,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=30,
                )
                if answer.status_code == 201:
                    receipts.append(
                        {"code": answer.json()["code"], "secret": answer.json()["lookup"]["secret"]}
                    )
            except requests.RequestException:
                self.stop.wait(1.0)
        n = 0
        while not self.stop.is_set():
            n += 1
            try:
                outcome = str(
                    session.post(
                        f"{base}/api/v1/lookups", json=receipts[n % len(receipts)], timeout=30
                    ).status_code
                )
            except requests.RequestException as exc:
                outcome = type(exc).__name__
            self.report.lookups[outcome] += 1
            self.stop.wait(1.0 / self.settings.lookups_per_second)

    def _scrapes(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            for service in SERVICES:
                try:
                    outcome = str(session.get(f"{self.system.url(service)}/metrics", timeout=30).status_code)
                except requests.RequestException as exc:
                    outcome = type(exc).__name__
                self.report.scrapes[outcome] += 1
            self.stop.wait(self.settings.scrape_seconds)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=600)


def _commune_procedure() -> str:
    from services.dossier.catalogue_files import load_catalogue

    return next(p.code for p in load_catalogue() if "commune" in p.levels and "counter" in p.channels)


_COMMUNE_PROCEDURE = _commune_procedure()


# -- the judgement ------------------------------------------------------------------------------------------


def judge(samples: list[Sample], warmup_fraction: float) -> list[Verdict]:
    """Each series' growth over the window after the warm-up, as its least-squares slope predicts it."""
    skip = max(1, round(len(samples) * warmup_fraction))
    window = samples[skip:]
    verdicts = []
    names = sorted({name for sample in window for name in sample.series})
    for name in names:
        points = [(s.at, s.series[name]) for s in window if name in s.series]
        if len(points) < 3:
            continue
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        slope = statistics.linear_regression(xs, ys).slope if len(set(ys)) > 1 else 0.0
        kind = next(k for k in TOLERANCE if name.startswith(k))
        verdicts.append(
            Verdict(name, ys[0], ys[-1], max(ys), slope * (xs[-1] - xs[0]), TOLERANCE[kind](ys[0]))
        )
    return verdicts


def verdict(v: Verdict) -> str:
    if not v.judged:
        return "not judged: a stand-in keeps what it receives"
    return "yes" if v.growth <= v.tolerance else "NO"


def write_samples(samples: list[Sample], path: Path) -> None:
    """Every sample of every series, a row a sample (seconds since the start, then the series by name)."""
    names = sorted({name for sample in samples for name in sample.series})
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["seconds", *names])
        for sample in samples:
            writer.writerow([f"{sample.at:.0f}", *(sample.series.get(name, "") for name in names)])


def table(report: Report) -> str:
    lines = [
        "| series | after warm-up | at the end | peak | growth the slope predicts | tolerance | bounded |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in report.verdicts:
        lines.append(
            f"| {v.series} | {v.first:.0f} | {v.last:.0f} | {v.peak:.0f} | {v.growth:+.1f} "
            f"| {v.tolerance:.0f} | {verdict(v)} |"
        )
    return "\n".join(lines)


def summary(report: Report) -> str:
    rounds = ", ".join(f"{k} ×{v}" for k, v in sorted(report.rounds.items()))
    lookups = " ".join(f"{k}:{v}" for k, v in sorted(report.lookups.items()))
    scrapes = " ".join(f"{k}:{v}" for k, v in sorted(report.scrapes.items()))
    drained = "not drained" if report.drain_seconds is None else f"{report.drain_seconds:.1f} s"
    return (
        f"soak: {report.minutes:g} min, {len(report.samples)} samples; demo rounds: {rounds}; "
        f"lookups: {lookups}; scrapes: {scrapes}; dossiers {report.dossiers}, lost {report.lost}, "
        f"double-counted {report.double_counted}; backlog drained in {drained} (at most {DRAIN_SECONDS:g} s)"
    )


def run(settings: SoakSettings, out=sys.stdout) -> Report:
    workdir = Path(tempfile.mkdtemp(prefix="motcua-soak-"))
    out.write(f"soak: logs in {workdir}\n")
    out.flush()
    report = Report(settings.minutes)
    system = System(workdir)
    try:
        system.start()
        started = time.monotonic()
        load = Load(system, settings, report)
        end = started + settings.minutes * 60
        try:
            while True:
                report.samples.append(Sample(time.monotonic() - started, system.sample()))
                out.write(f"soak: sample {len(report.samples)} at {report.samples[-1].at:.0f} s\n")
                out.flush()
                if time.monotonic() + settings.sample_seconds > end + 1:
                    break
                time.sleep(
                    max(0.0, started + len(report.samples) * settings.sample_seconds - time.monotonic())
                )
        finally:
            load.finish()
        stopped = time.monotonic()
        while time.monotonic() < stopped + DRAIN_SECONDS * 3:
            if system.backlog() == 0:
                report.drain_seconds = round(time.monotonic() - stopped, 1)
                break
            time.sleep(1.0)
        report.dossiers, report.lost, report.double_counted = system.figures()
        report.verdicts = judge(report.samples, settings.warmup_fraction)
    finally:
        system.stop()
        write_samples(report.samples, workdir / "samples.csv")
        out.write(f"soak: every sample in {workdir / 'samples.csv'}\n")
    out.write(summary(report) + "\n\n" + table(report) + "\n")
    out.flush()
    return report


def main(argv: list[str] | None = None) -> int:
    defaults = SoakSettings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", defaults.minutes))
    )
    parser.add_argument("--dossiers-per-hour", type=float, default=defaults.dossiers_per_hour)
    parser.add_argument("--round-dossiers", type=int, default=defaults.round_dossiers)
    parser.add_argument("--lookups-per-second", type=float, default=defaults.lookups_per_second)
    args = parser.parse_args(argv)
    settings = SoakSettings(
        minutes=args.minutes,
        dossiers_per_hour=args.dossiers_per_hour,
        round_dossiers=args.round_dossiers,
        lookups_per_second=args.lookups_per_second,
    )
    return 0 if run(settings).ok else 1


if __name__ == "__main__":
    sys.exit(main())
