"""benchmarks/bench_peak_hour.py's arithmetic on two scrapes of the services' instruments.

Worked by hand: a route answered 100 requests between the scrapes, 60 within 0.05 s, 98 within 0.25 s and
all 100 within 1 s. Its median (the 50th request) falls in the ``le=0.05`` bucket (60 ≥ 50); its 99th
percentile needs 99 requests, which only ``le=1.0`` holds (98 < 99 ≤ 100). A bucket's value before the
first scrape is subtracted, so requests answered before the run do not count.
"""

from __future__ import annotations

from benchmarks.bench_peak_hour import histograms, quantile_bound, statuses

NAME = "motcua_http_request_duration_seconds"
LABELS = (("method", "POST"), ("route", "/api/v1/dossiers"), ("service", "dossier"))


def bucket(le: str) -> tuple:
    return (f"{NAME}_bucket", tuple(sorted((*LABELS, ("le", le)))))


def test_quantiles_are_the_bounds_of_the_buckets_they_fall_in():
    before = {bucket("0.05"): 5.0, bucket("0.25"): 5.0, bucket("1.0"): 5.0, bucket("+Inf"): 5.0}
    after = {bucket("0.05"): 65.0, bucket("0.25"): 103.0, bucket("1.0"): 105.0, bucket("+Inf"): 105.0}
    grouped = histograms(before, after, NAME, ("service", "method", "route"))
    buckets = grouped[("dossier", "POST", "/api/v1/dossiers")]
    assert buckets[float("inf")] == 100.0
    assert quantile_bound(buckets, 0.5) == 0.05
    assert quantile_bound(buckets, 0.99) == 1.0


def test_a_route_without_requests_has_no_quantile():
    assert quantile_bound({float("inf"): 0.0}, 0.5) is None


def test_answers_are_counted_by_status_class():
    key = (
        "motcua_http_requests_total",
        (("method", "GET"), ("route", "/x"), ("service", "esign"), ("status", "503")),
    )
    ok = (
        "motcua_http_requests_total",
        (("method", "GET"), ("route", "/x"), ("service", "esign"), ("status", "200")),
    )
    found = statuses({key: 2.0, ok: 10.0}, {key: 7.0, ok: 30.0})
    assert found == {"esign": {"5xx": 5, "2xx": 20}}
    assert statuses({key: 2.0, ok: 10.0}, {key: 7.0, ok: 30.0}, by_route=True) == {"esign GET /x": {"503": 5}}
