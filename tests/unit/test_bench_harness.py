"""The benchmarks share one running-service harness (benchmarks/common.py): no benchmark starts a service,
finds a port, or makes a virtual host or a database of its own."""

from __future__ import annotations

import re
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
# What only the harness does: run a service, pick a port, create a vhost or a database, run wrk.
HARNESS_ONLY = re.compile(r'"shared\.runner"|def _?free_port\(|/api/vhosts/|CREATE DATABASE|\[\s*"wrk",')


def test_only_the_harness_runs_services():
    files = sorted(BENCHMARKS.glob("*.py"))
    assert (BENCHMARKS / "common.py") in files and len(files) > 3
    copied = [
        f"{path.name}: {match.group(0)}"
        for path in files
        if path.name != "common.py"
        for match in HARNESS_ONLY.finditer(path.read_text(encoding="utf-8"))
    ]
    assert not copied, f"use benchmarks/common.py instead: {copied}"
