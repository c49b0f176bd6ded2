"""A RabbitMQ node of the run's own (its own node name, ports and data directories), for faults that would
hurt everybody on a shared broker: a memory or disk alarm.

Every ``rabbitmqctl`` call names this node (``-n``); the shared broker is never addressed. As root the
node runs as the ``rabbitmq`` user (whose Erlang cookie the local ``rabbitmqctl`` shares).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

RABBIT_BIN = Path(os.environ.get("MOTCUA_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRabbitMQ:
    def __init__(self) -> None:
        if not (RABBIT_BIN / "rabbitmq-server").exists():
            raise RuntimeError(f"rabbitmq-server not found in {RABBIT_BIN} (set MOTCUA_RABBITMQ_BIN)")
        self.node = f"motcua-{uuid.uuid4().hex[:8]}@localhost"
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="motcua-rabbit-"))
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\nloopback_users = none\n", encoding="utf-8"
        )
        (self.root / "enabled_plugins").write_text("[].\n", encoding="utf-8")
        (self.root / "rabbitmq-env.conf").write_text("", encoding="utf-8")
        self._as_rabbitmq = os.geteuid() == 0
        if self._as_rabbitmq:
            for path in [self.root, *self.root.iterdir()]:
                shutil.chown(path, "rabbitmq", "rabbitmq")
        self.env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(_free_port()),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(self.root / "pid"),
        }
        if self._as_rabbitmq:
            self.env["HOME"] = "/var/lib/rabbitmq"  # its Erlang cookie, which rabbitmqctl must share
        self.process = subprocess.Popen(
            self._argv(RABBIT_BIN / "rabbitmq-server"),
            env=self.env,
            cwd=self.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.ctl("wait", "--timeout", "120", str(self.root / "pid"), timeout=150)

    @property
    def amqp_uri(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _argv(self, *command: object) -> list[str]:
        argv = [str(part) for part in command]
        return ["runuser", "-u", "rabbitmq", "--", *argv] if self._as_rabbitmq else argv

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """``rabbitmqctl -n <this node> …``: never the shared broker."""
        result = subprocess.run(
            self._argv(RABBIT_BIN / "rabbitmqctl", "-n", self.node, *args),
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {result.stdout}{result.stderr}")
        return result.stdout

    def memory_alarm(self, on: bool) -> None:
        """Publishers are blocked while the node's memory watermark is below what it uses."""
        self.ctl("set_vm_memory_high_watermark", "0.00001" if on else "0.4")

    def disk_alarm(self, on: bool) -> None:
        """Publishers are blocked while the node's free-disk limit is above the disk's free space."""
        self.ctl("set_disk_free_limit", "1000000GB" if on else "50MB")

    def destroy(self) -> None:
        try:
            self.ctl("stop", timeout=60)
        except (RuntimeError, subprocess.TimeoutExpired):
            self.process.kill()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        time.sleep(0.2)
        shutil.rmtree(self.root, ignore_errors=True)
