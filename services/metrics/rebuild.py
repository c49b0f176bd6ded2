"""``python -m services.metrics.rebuild``: replay the event log into an empty projection.

Empties the dossier facts and the totals, folds every logged dossier event again in sequence order
(events beyond a gap stay waiting, as they would live), and recounts the satisfaction ratings, all in
one transaction: either the new projection is complete or the old one stays. Stop the metrics service
first; it writes the same rows.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import tzinfo
from pathlib import Path

from services.metrics import repository
from shared.config import load_config
from shared.db import MAINTENANCE_TIMEOUT_SECONDS, create_engine
from shared.workcalendar import WorkingCalendar

CONFIG = Path(__file__).resolve().parent / "config.yml"


def rebuild(database_url: str, timezone: tzinfo) -> int:
    """Rebuild the projection in ``database_url``; returns the number of dossiers projected."""
    engine = create_engine(database_url, pool_size=1, timeout=MAINTENANCE_TIMEOUT_SECONDS)
    try:
        with engine.begin() as connection:
            return repository.rebuild(connection, timezone)
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rebuild the metrics projection from its event log.")
    parser.add_argument("--config", default=str(CONFIG), help="config.yml (default: the service's own)")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    url = config.get("DATABASE_URL")
    if not url:
        parser.error(f"{args.config}: DATABASE_URL is not set")
    timezone = WorkingCalendar.from_settings(config.get("CALENDAR") or None).timezone
    started = time.perf_counter()
    count = rebuild(url, timezone)
    print(f"projected {count} dossiers from the event log in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
