"""What the benchmarks share: a throw-away virtual host and database, a service run as its own processes
(as ``make run`` starts it), wrk, and where the machine's CPU went."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
BROKER = os.environ.get("MOTCUA_BENCH_BROKER", "amqp://guest:guest@127.0.0.1:5672")
MANAGEMENT = os.environ.get("MOTCUA_BENCH_MANAGEMENT", "http://guest:guest@127.0.0.1:15672")
POSTGRES_ADMIN = os.environ.get("MOTCUA_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


class BenchVhost:
    """A throw-away RabbitMQ virtual host, so benchmark traffic never reaches a running system."""

    def __enter__(self) -> str:
        import requests

        self.name = f"motcua-bench-{uuid.uuid4().hex[:8]}"
        self.api = f"{MANAGEMENT}/api/vhosts/{self.name}"
        requests.put(self.api, timeout=10).raise_for_status()
        user = sa.engine.make_url(BROKER.replace("amqp", "postgresql", 1)).username or "guest"
        requests.put(
            f"{MANAGEMENT}/api/permissions/{self.name}/{user}",
            timeout=10,
            json={"configure": ".*", "write": ".*", "read": ".*"},
        ).raise_for_status()
        return f"{BROKER}/{self.name}"

    def __exit__(self, *exc) -> None:
        import requests

        requests.delete(self.api, timeout=30)


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wrk(url: str, script: str, seconds: int, connections: int) -> str:
    """What wrk printed, run with the Lua ``script`` against ``url`` (two threads)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        return subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", handle.name, url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(handle.name)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from ``/proc/<pid>/stat`` (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RunningService:
    """``service`` as ``processes`` processes of its own on one port (SO_REUSEPORT, which eventlet.listen
    sets), migrated first, on the given database and broker; ``root``: the source tree to run.
    ``runner``: the command that starts one process, the service's name appended (``shared.runner``;
    benchmarks/counted_runner.py to count PostgreSQL round trips)."""

    runner: tuple[str, ...] = (sys.executable, "-m", "shared.runner")

    def __init__(
        self,
        service: str,
        amqp_uri: str,
        database_url: str,
        *,
        root: Path = ROOT,
        processes: int = 1,
        env: dict[str, str] | None = None,
    ) -> None:
        self.service = service
        self.root = root
        self.processes_wanted = processes
        self.port = free_port()
        prefix = service.upper()
        self.env = {
            **os.environ,
            "AMQP_URI": amqp_uri,
            f"{prefix}_DATABASE_URL": database_url,
            f"{prefix}_ADDRESS": f"127.0.0.1:{self.port}",
            "PYTHONPATH": str(root),
            "LOG_LEVEL": "WARNING",
            "MAX_WORKERS": "20",
            **(env or {}),
        }
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen] = []

    def __enter__(self):
        subprocess.run(
            [sys.executable, "-m", "shared.migrate", self.service],
            cwd=self.root,
            env=self.env,
            check=True,
            capture_output=True,
        )
        for _ in range(self.processes_wanted):
            self.processes.append(
                subprocess.Popen(
                    [*self.runner, self.service],
                    cwd=self.root,
                    env=self.env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            self._wait_live()
        return self

    @property
    def process(self) -> subprocess.Popen:
        return self.processes[0]

    def _wait_live(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                connection.request("GET", "/health/live")
                if connection.getresponse().status == 200:
                    time.sleep(0.5 if len(self.processes) > 1 else 0)  # the newest one listens too
                    return
            except OSError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"{self.service} service did not start")

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(process.pid) for process in self.processes)

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


# What else on the machine spends CPU while a service is measured: the servers it needs and the load
# generator share its cores. Grouped by the process's command name (/proc/<pid>/comm).
GROUPS = {"postgres": "postgresql", "beam.smp": "rabbitmq", "erl_child_setup": "rabbitmq", "wrk": "wrk"}


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from the first line of /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return (total - idle) / ticks, total / ticks


def cpu_by_process(service_pids: set[int]) -> dict[int, tuple[str, float]]:
    """Per process of a known group (the service's, PostgreSQL's, RabbitMQ's, wrk's): its group and its
    CPU seconds so far."""
    found: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            group = "service" if pid in service_pids else GROUPS.get((entry / "comm").read_text().strip())
            if group is not None:
                found[pid] = (group, cpu_seconds(pid))
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return found


class MachineCpu:
    """How busy the machine was, and who spent it, between ``start()`` and ``stop()``."""

    def __init__(self, service_pids: set[int]) -> None:
        self.service_pids = service_pids

    def start(self) -> None:
        self._machine = machine_cpu()
        self._processes = cpu_by_process(self.service_pids)
        self._children = _waited_children_cpu()

    def stop(self, transitions: int) -> dict:
        busy, total = (end - start for end, start in zip(machine_cpu(), self._machine, strict=True))
        spent: dict[str, float] = {}
        # A process that started meanwhile counts whole; one that ended meanwhile took its time with it
        # (PostgreSQL's backends live as long as the pool's connections, so little is lost).
        for pid, (group, seconds) in cpu_by_process(self.service_pids).items():
            spent[group] = spent.get(group, 0.0) + seconds - self._processes.get(pid, (group, 0.0))[1]
        # wrk runs as this process's child and has exited by now: its time is in our children's times.
        spent["wrk"] = spent.get("wrk", 0.0) + _waited_children_cpu() - self._children
        spent["other"] = busy - sum(spent.values())
        return {
            "machine_busy_pct": round(100 * busy / total, 1) if total else None,
            "cpu_ms_per_transition_by": {
                name: round(seconds * 1000 / transitions, 2) if transitions else None
                for name, seconds in sorted(spent.items())
            },
        }


def _waited_children_cpu() -> float:
    """CPU seconds of this process's children that have exited and been waited for (wrk, run to its end)."""
    times = os.times()
    return times.children_user + times.children_system
