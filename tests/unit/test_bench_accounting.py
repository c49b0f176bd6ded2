"""The benchmarks' CPU accounting (benchmarks/common.py): a process named as the service's is counted as
the service's, and its CPU time is part of the machine's busy time."""

from __future__ import annotations

import subprocess
import sys
import time

from benchmarks.common import MachineCpu


def test_a_busy_service_process_is_counted_as_the_service_and_the_machine_as_busy():
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        machine = MachineCpu({child.pid})
        machine.start()
        time.sleep(1.0)
        figures = machine.stop(transitions=1)  # the child still runs: its time is readable
    finally:
        child.kill()
        child.wait()
    by = figures["cpu_ms_per_transition_by"]
    # One spinning process gets some of a core over one second, even on a loaded machine; it is the
    # service's, not "other".
    assert by["service"] > 100
    assert figures["machine_busy_pct"] >= 100 * by["service"] / 1000 / _cores() - 5


def _cores() -> int:
    import os

    return os.cpu_count() or 1
