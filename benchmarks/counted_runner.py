"""``python benchmarks/counted_runner.py <service>``: ``shared.runner``, counting PostgreSQL round trips.

Under eventlet every wait of psycopg2 on the server (a connect, BEGIN, a statement, COMMIT, a ping, a
``SET``) goes through the green wait callback once; this wraps whatever callback the service installs
and counts its calls. ``SIGUSR1`` writes the count so far to the file named by ``MOTCUA_ROUND_TRIPS``; with
``MOTCUA_PROFILE`` set, the process runs under cProfile and ``SIGUSR2`` writes its statistics there.
Run by path (not ``-m``), so that it can start the service of another source tree (a baseline's) on
``PYTHONPATH``: it only relies on ``shared.runner.main`` and psycopg2.
"""

from __future__ import annotations

import os
import signal
import sys

import eventlet

eventlet.monkey_patch()

import psycopg2.extensions  # noqa: E402

_calls = [0]
_install = psycopg2.extensions.set_wait_callback


def _counting(callback):
    if callback is None:
        return _install(None)

    def counted(connection, *args, **kwargs):
        _calls[0] += 1
        return callback(connection, *args, **kwargs)

    return _install(counted)


psycopg2.extensions.set_wait_callback = _counting


def _report(_signum, _frame) -> None:
    path = os.environ["MOTCUA_ROUND_TRIPS"]
    with open(path + ".tmp", "w") as handle:
        handle.write(str(_calls[0]))
    os.replace(path + ".tmp", path)


signal.signal(signal.SIGUSR1, _report)

if os.environ.get("MOTCUA_PROFILE"):
    # cProfile of the whole process (every greenthread), written at SIGUSR2 to MOTCUA_PROFILE.
    import cProfile

    _profile = cProfile.Profile()

    def _dump(_signum, _frame) -> None:
        _profile.disable()
        _profile.dump_stats(os.environ["MOTCUA_PROFILE"])

    signal.signal(signal.SIGUSR2, _dump)
    _profile.enable()

if __name__ == "__main__":
    sys.path.insert(0, os.environ.get("PYTHONPATH", "").split(os.pathsep)[0] or ".")
    from shared.runner import main

    sys.exit(main(sys.argv[1:]))
