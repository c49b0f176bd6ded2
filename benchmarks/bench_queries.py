"""List queries over one million dossiers in PostgreSQL, through the HTTP API.

One dossier is received through the API as a template; a single INSERT … SELECT over
``generate_series`` then spreads a million copies over the province's communes, twelve months and
the statuses of a real desk (most returned, some in process, a share of those overdue). The figures are
the latency of two questions an office asks every day, asked through the API with an auditor's token.
"""

from __future__ import annotations

import statistics
import time

import requests
import sqlalchemy as sa

from benchmarks.bench_dossier import RunningDossier
from shared.auth import DEV_SECRET, mint
from shared.units import UnitRegistry

APPLICANT = {"full_name": "Nguyễn Văn An", "id_number": "079203001234"}


def _spread(database_url: str, template: str, province: str, communes: list[str], count: int) -> None:
    engine = sa.create_engine(database_url)
    units = "ARRAY[" + ",".join(f"'{c}'" for c in communes) + "]"
    with engine.begin() as connection:
        columns = [c["name"] for c in sa.inspect(connection).get_columns("dossiers")]
        # Independent pseudo-random draws per row (hashtext), so unit, age and status do not correlate.
        unit = f"({units})[1 + abs(hashtext('u' || i)) % {len(communes)}]"
        age = "(abs(hashtext('d' || i)) % 525600) * interval '1 minute'"  # within the last year
        draw = "abs(hashtext('s' || i)) % 20"
        varied = {
            "code": "'B' || lpad(i::text, 8, '0')",
            "receiving_unit": unit,
            "handling_unit": unit,
            "receiving_path": f"'{province}.' || {unit}",
            "handling_path": f"'{province}.' || {unit}",
            "created_at": f"now() - {age}",
            "received_at": f"now() - {age}",
            "due_at": f"now() - {age} + interval '5 days'",
            "original_due_at": f"now() - {age} + interval '5 days'",
            # 70 % returned, 10 % resolved, 15 % in process, 5 % waiting for a supplement.
            "status": (
                f"CASE WHEN {draw} < 14 THEN 10 WHEN {draw} < 16 THEN 9 WHEN {draw} < 19 THEN 4 ELSE 5 END"
            ),
            "watch_at": "NULL",
        }
        select = ", ".join(varied.get(c, f"t.{c}") for c in columns)
        connection.execute(
            sa.text(
                f"INSERT INTO dossiers ({', '.join(columns)}) SELECT {select} "
                f"FROM dossiers t, generate_series(1, {count}) AS i WHERE t.code = :template"
            ),
            {"template": template},
        )
    engine.dispose()
    # What autovacuum does on a live system after a bulk load: statistics and the visibility map.
    maintenance = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    with maintenance.connect() as connection:
        connection.execute(sa.text("VACUUM ANALYZE dossiers"))
    maintenance.dispose()


def _timed(session: requests.Session, url: str, params: dict, repeats: int) -> dict:
    latencies = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = session.get(url, params=params, timeout=60)
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{url} {params}: {response.status_code} {response.text[:200]}")
    latencies.sort()
    return {
        "count": response.json()["count"],
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1),
    }


def million(amqp_uri: str, database_url: str, count: int = 1_000_000, repeats: int = 30) -> dict:
    units = UnitRegistry.default()
    province = "79"
    communes = [u.code for u in units.children(province)]
    with RunningDossier(amqp_uri, database_url) as service:
        desk = {
            "Authorization": f"Bearer {mint(DEV_SECRET, sub='b', roles=['desk_officer'], units=[province])}"
        }
        created = requests.post(
            f"{service.url}/api/v1/dossiers",
            headers=desk,
            timeout=30,
            json={"procedure_code": "1.004873", "receiving_unit": communes[0], "applicant": APPLICANT},
        )
        if created.status_code != 201:
            raise RuntimeError(f"template receipt failed: {created.text[:300]}")
        loading = time.perf_counter()
        _spread(database_url, created.json()["code"], province, communes, count)
        loaded_in = time.perf_counter() - loading
        session = requests.Session()
        token = mint(DEV_SECRET, sub="auditor", roles=["auditor"], units=[province])
        session.headers["Authorization"] = f"Bearer {token}"
        month_start = time.strftime("%Y-%m-01")
        url = f"{service.url}/api/v1/dossiers"
        overdue = _timed(session, url, {"unit": communes[7], "overdue": "true"}, repeats)
        month = _timed(session, url, {"unit": province, "received_from": month_start}, repeats)
    return {
        "dossiers": count + 1,
        "communes": len(communes),
        "load_s": round(loaded_in, 1),
        "overdue_in_one_commune": overdue,
        "province_this_month_page_1": month,
        "target_ms": 50,
    }
