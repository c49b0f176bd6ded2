"""``python -m scripts.demo``: the options, and the day from plan to summary."""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import UTC, datetime

import requests

from scripts.demo import postal
from scripts.demo.client import (
    DEFAULT_DOSSIER_URL,
    DEFAULT_METRICS_URL,
    VIETNAM,
    Api,
    DemoError,
    ServiceMissing,
)
from scripts.demo.day import Day
from scripts.demo.outbound import Outbound
from scripts.demo.planner import choose_communes, plan_day
from scripts.demo.render import collect, metrics_answers, render, scrape, sla_report, wait_for_events
from services.dossier.catalogue_files import load_catalogue
from shared.auth import DEV_SECRET
from shared.units import UnitRegistry


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.demo",
        description="A working day of one province's one-stop desks, driven through the HTTP API.",
    )
    parser.add_argument("--dossier-url", default=DEFAULT_DOSSIER_URL, help="env MOTCUA_DOSSIER_URL")
    parser.add_argument("--metrics-url", default=DEFAULT_METRICS_URL, help="env MOTCUA_METRICS_URL")
    parser.add_argument("--province", default=os.environ.get("DEMO_PROVINCE", "79"))
    parser.add_argument("--communes", type=int, default=12, help="how many of its communes (default 12)")
    parser.add_argument("--dossiers", type=int, default=300, help="dossiers filed today (default 300)")
    parser.add_argument("--seed", type=int, default=1, help="same seed, same day (default 1)")
    parser.add_argument("--workers", type=int, default=4, help="officers working in parallel (default 4)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP request")
    parser.add_argument("--wait", type=float, default=30.0, help="seconds to wait for events to go out")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    parser.add_argument(
        "--postal-url",
        default=os.environ.get("MOTCUA_POSTAL_URL"),
        help="env MOTCUA_POSTAL_URL; default: the local postal service when --dossier-url is the local "
        "default too, otherwise the postal flows are skipped",
    )
    parser.add_argument(
        "--operator-url",
        default=os.environ.get("MOTCUA_POSTAL_OPERATOR_URL", "http://127.0.0.1:8011"),
        help="the postal operator simulator (env MOTCUA_POSTAL_OPERATOR_URL)",
    )
    parser.add_argument(
        "--no-postal", dest="postal", action="store_false", help="skip the postal pickups and returns"
    )
    parser.add_argument(
        "--esign-url",
        default=os.environ.get("MOTCUA_ESIGN_URL"),
        help="env MOTCUA_ESIGN_URL; default: the local e-signature service when --dossier-url is the local "
        "default and it answers; otherwise results are signed and stamped by hand (the manual actions)",
    )
    parser.add_argument(
        "--no-esign", dest="esign", action="store_false", help="sign and stamp by hand, not digitally"
    )
    parser.add_argument(
        "--outbound-url",
        default=os.environ.get("MOTCUA_OUTBOUND_URL"),
        help="env MOTCUA_OUTBOUND_URL; default: the local outbound service when --dossier-url is the local "
        "default and it answers; otherwise the national portal and the subscriber are skipped",
    )
    parser.add_argument(
        "--portal-simulator-url",
        default=os.environ.get("MOTCUA_PORTAL_SIMULATOR_URL", "http://127.0.0.1:8012"),
        help="the national portal simulator (env MOTCUA_PORTAL_SIMULATOR_URL)",
    )
    args = parser.parse_args(argv)
    if args.dossiers < 1 or args.communes < 1 or args.workers < 1:
        parser.error("--dossiers, --communes and --workers must be at least 1")
    args.secret = os.environ.get("JWT_SECRET") or DEV_SECRET
    if not args.postal:
        args.postal_url = None
    elif args.postal_url is None and args.dossier_url == DEFAULT_DOSSIER_URL:
        args.postal_url = "http://127.0.0.1:8001"  # beside the local dossier service, as `make run` starts it
    if not args.esign:
        args.esign_url = None
    elif args.esign_url is None and args.dossier_url == DEFAULT_DOSSIER_URL:
        local = "http://127.0.0.1:8002"
        try:
            args.esign_url = local if requests.get(f"{local}/health/live", timeout=2).ok else None
        except requests.RequestException:
            args.esign_url = None
    if args.outbound_url is None and args.dossier_url == DEFAULT_DOSSIER_URL:
        local = "http://127.0.0.1:8004"
        try:
            args.outbound_url = local if requests.get(f"{local}/health/live", timeout=2).ok else None
        except requests.RequestException:
            args.outbound_url = None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    try:
        units = UnitRegistry.from_settings(os.environ.get("UNITS_FILE") or None)
        now = datetime.now(UTC)
        catalogue = load_catalogue()
        procedures = []
        for code in catalogue.codes():
            try:
                procedures.append(catalogue.get(code, at=now))
            except KeyError:
                continue  # not in force today
        rng = random.Random(args.seed)
        communes = choose_communes(units, args.province, args.communes, rng)
        args.communes_list = communes
        cases = plan_day(rng, args.dossiers, communes, procedures)
        day = Day(args, units, cases)
        province_name = units.get(args.province).name
        today = now.astimezone(VIETNAM)
        print(
            f"motcua demo — a working day at the one-stop desks of {province_name} ({args.province}), "
            f"{today:%A %d/%m/%Y %H:%M}",
            flush=True,
        )
        print(
            f"  {len(communes)} communes ({', '.join(units.get(c).name for c in communes[:3])}"
            f"{', …' if len(communes) > 3 else ''}) · {len(cases)} dossiers · {len(procedures)} procedures"
            f" in force · seed {args.seed} · {args.workers} officers in parallel",
            flush=True,
        )
        day.preflight()
        metrics = Api("metrics", args.metrics_url, args.timeout)
        sla_note = metrics_answers(metrics)
        sla_before = None
        if sla_note is None:
            try:
                sla_before = sla_report(metrics, day.tokens, args.province, today.date())
            except DemoError as exc:
                sla_note = f"metrics service did not give its SLA report ({exc}): skipped"
        events_before, _ = scrape(day.dossier)
        outbound = None
        if args.outbound_url:
            outbound = Outbound(
                args.outbound_url, args.portal_simulator_url, day.tokens, communes[0], args.timeout
            )
            outbound.subscribe()

        day.run()
        print("\nRules the API enforced (the requests below were refused on purpose; nothing changed):")
        for check in sorted(day.checks, key=lambda c: c.status):
            print(f"  {check.status}  {check.what}\n       → {check.answer}")
        figures = collect(day)
        writes = day.dossier.writes
        figures.events, figures.events_pending = wait_for_events(
            day.dossier, events_before, writes, args.wait
        )
        if sla_before is not None:
            received = sum(1 for d in figures.dossiers if d.get("received_at"))
            target = sla_before["total"]["received"] + received
            deadline = time.monotonic() + args.wait
            try:
                while True:
                    report = sla_report(metrics, day.tokens, args.province, today.date())
                    if report["total"]["received"] >= target or time.monotonic() > deadline:
                        break
                    time.sleep(0.5)
                figures.sla, figures.sla_before = report, sla_before["total"]["received"]
                if report["total"]["received"] < target:
                    sla_note = "(the metrics service has not caught up with every event yet)"
            except (DemoError, KeyError) as exc:
                figures.sla, sla_note = None, f"metrics service's SLA report failed ({exc}): skipped"
        figures.sla_note = sla_note or ""
        title = f"Summary: {province_name} ({args.province}), {today:%A %d %B %Y}"
        print()
        print(
            render(
                figures,
                title=title,
                day=day,
                catalogue={p.code: p for p in procedures},
                elapsed=time.monotonic() - started,
            )
        )
        if figures.sla is not None and sla_note:
            print(sla_note)
        if day.esign is not None:
            print(
                f"\nE-signature: {day.signed_digitally} results signed by the leader in the e-signature "
                "service (PAdES), the approved ones sealed by the clerk; the dossiers recorded both steps "
                "from its events."
            )
        if outbound is not None:
            outbound.report({case.code for case in day.cases if case.code}, args.wait)
        if args.postal_url:
            try:
                postal.run(
                    day.dossier,
                    day.tokens,
                    communes[0],
                    postal_url=args.postal_url,
                    operator_url=args.operator_url,
                    timeout=args.wait,
                )
            except ServiceMissing as exc:
                print(f"\npostal flows skipped: {str(exc).splitlines()[0]}")
        return 0
    except ServiceMissing as exc:
        print(f"\ndemo stopped: {exc}", file=sys.stderr)
        return 2
    except DemoError as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
