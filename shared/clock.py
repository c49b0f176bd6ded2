"""The time every service, the postal operator simulator and the test TSA take as "now".

Unset (always, outside development) :func:`now` is ``datetime.now(UTC)`` behind one comparison. With
``MOTCUA_ENV=development`` and ``MOTCUA_CLOCK_FILE=/some/file``, the file moves the clock of every
process that reads it: it holds one ISO 8601 instant, and the clock runs on from that instant since the
file was last written (its modification time), at the real pace. No file, or an empty one, is the real
clock. ``python -m shared.clock 2027-01-01T08:00+07:00`` writes it (atomically); ``--real`` removes it.

A file, not an HTTP endpoint: one write moves every process on the machine at once (each service and its
replicas, the simulator, the TSA, which are not all HTTP services of ours), with nothing to reach or to
secure; each read is one ``stat``, the file's text parsed again only when it changed.

What measures durations (timeouts, latencies, backoff) stays on ``time.monotonic``, and what other
software checks against the real clock (token expiry, webhook freshness, pipeline ages) stays on
``datetime.now``: tests/unit/test_architecture.py lists each such read and why.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

ENV_VARIABLE = "MOTCUA_CLOCK_FILE"
_ZERO = timedelta(0)
_SETTLED = timedelta(milliseconds=50)


class FileClock:
    """The clock a file moves: its instant, plus the real time elapsed since the file was written."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._seen: tuple[tuple[int, int, int], timedelta] | None = None

    def offset(self, real: datetime | None = None) -> timedelta:
        """How far this clock is ahead of the real one (negative: behind)."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return _ZERO
        key = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        seen = self._seen
        if seen is not None and seen[0] == key:
            return seen[1]
        text = self.path.read_text().strip()
        written = datetime.fromtimestamp(stat.st_mtime_ns / 1e9, UTC)
        if not text:
            offset = _ZERO
        else:
            instant = datetime.fromisoformat(text)
            if instant.tzinfo is None:
                raise ValueError(
                    f"{self.path}: {text!r} has no UTC offset (write e.g. 2027-01-01T08:00+07:00)"
                )
            offset = instant - written
        # An overwrite in place within one coarse mtime tick keeps inode, size and mtime: a file
        # written just now is read again until it has settled.
        if (real or datetime.now(UTC)) - written > _SETTLED:
            self._seen = (key, offset)
        return offset

    def now(self) -> datetime:
        real = datetime.now(UTC)
        return real + self.offset(real)


def armed(environ: Mapping[str, str]) -> str | None:
    """The clock file named in ``environ``, if it may move the clock there (development only)."""
    path = environ.get(ENV_VARIABLE, "")
    if path and environ.get("MOTCUA_ENV", "").strip().lower() == "development":
        return path
    return None


def refusal(environ: Mapping[str, str]) -> str | None:
    """Why ``environ`` must not start a service (a clock file outside development), or None."""
    if environ.get(ENV_VARIABLE) and armed(environ) is None:
        return f"{ENV_VARIABLE} is set outside MOTCUA_ENV=development: a file would move this service's time"
    return None


_ARMED = armed(os.environ)
_CLOCK = FileClock(_ARMED) if _ARMED else None


def now() -> datetime:
    """The current instant, aware, in UTC."""
    if _CLOCK is None:
        return datetime.now(UTC)
    return _CLOCK.now()


def at(timestamp: float) -> datetime:
    """The instant this clock shows for a real POSIX ``timestamp`` (a moment scheduled in real seconds)."""
    real = datetime.fromtimestamp(timestamp, UTC)
    return real if _CLOCK is None else real + _CLOCK.offset()


def move_to(path: str | os.PathLike[str], instant: datetime) -> None:
    """Write ``instant`` to the clock file at ``path`` in one atomic step (what a test calls)."""
    if instant.tzinfo is None:
        raise ValueError("the instant needs a UTC offset")
    target = Path(path)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    with os.fdopen(fd, "w") as file:
        file.write(instant.isoformat() + "\n")
    os.replace(temporary, target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=f"Move the development clock (the file ${ENV_VARIABLE}).")
    parser.add_argument("instant", nargs="?", help="ISO 8601 with its offset, e.g. 2027-01-01T08:00+07:00")
    parser.add_argument("--real", action="store_true", help="back to the real clock (removes the file)")
    args = parser.parse_args(argv)
    path = os.environ.get(ENV_VARIABLE)
    if not path:
        print(f"{ENV_VARIABLE} is not set: the services read the real clock", file=sys.stderr)
        return 2
    if args.real:
        Path(path).unlink(missing_ok=True)
    elif args.instant:
        move_to(path, datetime.fromisoformat(args.instant))
    print(FileClock(path).now().isoformat())
    return 0


if __name__ == "__main__":
    sys.exit(main())
