"""shared/neighbours.py: the circuit's states, the retries' waits and Retry-After, the caller's outcome.

The expected waits are worked out by hand from the policy (urllib3's back-off: none before the second
attempt, then ``backoff · 2^(n − 2)``; a Retry-After is waited, up to ``retry_after_max``). The neighbour
is a real local HTTP server (tests/support/receiver.py) or a port where nothing listens.
"""

from __future__ import annotations

import time

import pybreaker
import pytest
from prometheus_client import REGISTRY

from shared import neighbours
from shared.neighbours import NeighbourUnavailable, Policy
from tests.conftest import free_port
from tests.support.receiver import Receiver

FAST = Policy(connect_timeout=0.5, read_timeout=0.5, attempts=1, failures_to_open=3, cooldown=0.4)


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def gauge(service: str, name: str) -> float | None:
    labels = {"service": service, "neighbour": name}
    return REGISTRY.get_sample_value("motcua_neighbour_circuit_state", labels)


def calls(service: str, name: str, outcome: str) -> float:
    labels = {"service": service, "neighbour": name, "outcome": outcome}
    return REGISTRY.get_sample_value("motcua_neighbour_calls_total", labels) or 0.0


def down_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused at once


# -- the policy, by hand ----------------------------------------------------------------------------


def test_the_waits_between_attempts_double_from_the_third_and_stop_at_the_maximum():
    policy = Policy(backoff=0.5, backoff_max=3.0)
    # none before the 2nd attempt; 0.5·2 = 1 before the 3rd, 0.5·4 = 2 before the 4th, 0.5·8 = 4 → 3.
    assert [policy.wait_before(n) for n in (2, 3, 4, 5)] == [0.0, 1.0, 2.0, 3.0]


def test_the_bound_of_a_call_is_every_attempt_timing_out_and_every_wait_at_its_longest():
    policy = Policy(connect_timeout=1, read_timeout=2, attempts=3, backoff=0.5, retry_after_max=4)
    # 3 attempts × (1 + 2) s, and 2 waits that a Retry-After may stretch to 4 s each: 9 + 8.
    assert policy.bound() == 17
    assert Policy(connect_timeout=1, read_timeout=2, attempts=1).bound() == 3


def test_retry_after_is_read_as_seconds_or_as_an_http_date():
    from datetime import UTC, datetime

    now = datetime(2026, 12, 7, 23, 0, 0, tzinfo=UTC)
    assert neighbours.retry_after_seconds("120") == 120
    assert neighbours.retry_after_seconds("Mon, 07 Dec 2026 23:01:30 GMT", now) == 90
    assert neighbours.retry_after_seconds("Mon, 07 Dec 2026 22:00:00 GMT", now) == 0
    assert neighbours.retry_after_seconds("soon") is None
    assert neighbours.retry_after_seconds(None) is None


# -- the circuit ------------------------------------------------------------------------------------


def test_the_circuit_opens_after_n_consecutive_failures_and_then_makes_no_call():
    neighbour = neighbours.Neighbour("unit", "down-one", down_url(), FAST)
    for expected_failures in (1, 2):
        with pytest.raises(NeighbourUnavailable) as failed:
            neighbour.request("GET", "/x")
        assert not failed.value.short_circuited
        assert neighbour.state == pybreaker.STATE_CLOSED
        assert neighbour.breaker.fail_counter == expected_failures
    with pytest.raises(NeighbourUnavailable):
        neighbour.request("GET", "/x")  # the third failure in a row: failures_to_open = 3
    assert neighbour.state == pybreaker.STATE_OPEN
    assert gauge("unit", "down-one") == 2

    started = time.monotonic()
    with pytest.raises(NeighbourUnavailable) as refused:
        neighbour.request("GET", "/x")
    assert refused.value.short_circuited
    assert time.monotonic() - started < 0.05  # not attempted
    assert refused.value.retry_after == 1  # 0.4 s of cool-down left, in whole seconds: 1
    assert calls("unit", "down-one", "failed") == 3
    assert calls("unit", "down-one", "short_circuited") == 1
    assert neighbour.health().startswith("circuit open")
    neighbour.close()


def test_a_success_between_failures_starts_the_count_again(receiver):
    neighbour = neighbours.Neighbour("unit", "flaky", receiver.url, FAST)
    receiver.fail(2, 503)
    for _ in range(2):
        with pytest.raises(NeighbourUnavailable):
            neighbour.request("GET", "")
    assert neighbour.request("GET", "").status_code == 204
    receiver.fail(2, 503)
    for _ in range(2):
        with pytest.raises(NeighbourUnavailable):
            neighbour.request("GET", "")
    # 2 + 2 failures, never 3 in a row: still closed.
    assert neighbour.state == pybreaker.STATE_CLOSED
    neighbour.close()


def test_a_refusal_is_an_answer_not_a_failure(receiver):
    neighbour = neighbours.Neighbour("unit", "refusing", receiver.url, FAST)
    receiver.always = (422, {})
    for _ in range(5):
        assert neighbour.request("POST", "", json={}).status_code == 422
    assert neighbour.state == pybreaker.STATE_CLOSED
    assert calls("unit", "refusing", "refused") == 5
    neighbour.close()


def test_after_the_cool_down_one_trial_call_closes_the_circuit_or_opens_it_again(receiver):
    neighbour = neighbours.Neighbour("unit", "returning", receiver.url, FAST)
    receiver.always = (503, {})
    for _ in range(3):
        with pytest.raises(NeighbourUnavailable):
            neighbour.request("GET", "")
    assert neighbour.state == pybreaker.STATE_OPEN
    asked = len(receiver.received)

    time.sleep(0.45)  # the cool-down (0.4 s) is over: the next call is a trial
    with pytest.raises(NeighbourUnavailable) as trial:
        neighbour.request("GET", "")
    assert not trial.value.short_circuited and len(receiver.received) == asked + 1
    assert neighbour.state == pybreaker.STATE_OPEN  # the trial failed: open for another cool-down
    # the later of the cool-down left (1 s) and the default wait after a failure without Retry-After (5 s)
    assert trial.value.retry_after == 5
    with pytest.raises(NeighbourUnavailable) as again:
        neighbour.request("GET", "")
    assert again.value.short_circuited

    receiver.always = None  # the neighbour is back (answers 204)
    time.sleep(0.45)
    assert neighbour.request("GET", "").status_code == 204
    assert neighbour.state == pybreaker.STATE_CLOSED
    assert gauge("unit", "returning") == 0
    assert neighbour.health() == "up"
    neighbour.close()


# -- retries and Retry-After ------------------------------------------------------------------------


def test_a_retry_after_is_waited_before_the_next_attempt(receiver):
    neighbour = neighbours.Neighbour("unit", "busy", receiver.url, Policy(attempts=2, retry_after_max=5))
    receiver.fail(1, 503, **{"Retry-After": "1"})
    started = time.monotonic()
    assert neighbour.request("GET", "").status_code == 204
    elapsed = time.monotonic() - started
    # one 503 saying "1 s", then the answer: 1 s waited, not urllib3's 0 s before a second attempt.
    assert 1.0 <= elapsed < 1.8
    assert [r["status"] for r in receiver.received] == [503, 204]
    neighbour.close()


def test_a_retry_after_longer_than_the_maximum_is_waited_only_the_maximum(receiver):
    policy = Policy(attempts=2, retry_after_max=1)
    neighbour = neighbours.Neighbour("unit", "very-busy", receiver.url, policy)
    receiver.fail(1, 429, **{"Retry-After": "3600"})
    started = time.monotonic()
    assert neighbour.request("GET", "").status_code == 204
    assert 1.0 <= time.monotonic() - started < 1.8  # 1 s (the maximum), not an hour
    neighbour.close()


def test_when_the_retries_run_out_the_caller_is_told_the_neighbours_retry_after(receiver):
    policy = Policy(attempts=2, retry_after_max=0.1, failures_to_open=5)
    neighbour = neighbours.Neighbour("unit", "closing", receiver.url, policy)
    receiver.always = (503, {"Retry-After": "7"})
    with pytest.raises(NeighbourUnavailable) as failed:
        neighbour.request("GET", "")
    assert failed.value.retry_after == 7
    assert len(receiver.received) == 2  # attempts = 2
    problem = failed.value.problem()
    assert problem.status == 503 and problem.headers["Retry-After"] == "7"
    assert problem.to_dict()["neighbour"] == "closing"
    neighbour.close()


def test_a_post_is_retried_only_when_it_carries_an_idempotency_key(receiver):
    neighbour = neighbours.Neighbour("unit", "posting", receiver.url, Policy(attempts=3))
    receiver.fail(1, 503)
    with pytest.raises(NeighbourUnavailable):
        neighbour.request("POST", "", json={"n": 1})  # may have been done: not sent again
    assert len(receiver.received) == 1

    receiver.fail(1, 503)
    assert neighbour.request("POST", "", json={"n": 2}, idempotency_key="k-2").status_code == 204
    assert [r["headers"].get("Idempotency-Key") for r in receiver.received[1:]] == ["k-2", "k-2"]
    neighbour.close()


def test_a_refused_connection_is_retried_whatever_the_method():
    policy = Policy(attempts=3, backoff=0.1, connect_timeout=0.5, read_timeout=0.5, failures_to_open=9)
    neighbour = neighbours.Neighbour("unit", "refused-post", down_url(), policy)
    started = time.monotonic()
    with pytest.raises(NeighbourUnavailable) as failed:
        neighbour.request("POST", "", json={})
    # three connections refused; waits 0 and 0.1·2 = 0.2 s between them.
    assert 0.2 <= time.monotonic() - started < 1.0
    assert failed.value.reason == "ConnectionError"
    neighbour.close()


def test_a_slow_neighbour_costs_at_most_the_bound(receiver):
    policy = Policy(connect_timeout=0.3, read_timeout=0.3, attempts=2, backoff=0.1, retry_after_max=0.1)
    neighbour = neighbours.Neighbour("unit", "slow", receiver.url, policy)
    receiver.delay = 1.5
    started = time.monotonic()
    with pytest.raises(NeighbourUnavailable) as failed:
        neighbour.request("GET", "")
    elapsed = time.monotonic() - started
    # two reads of 0.3 s each time out: about 0.6 s, within the bound 2 × 0.6 + 0.1 = 1.3 s.
    assert 0.6 <= elapsed <= policy.bound()
    assert failed.value.reason in ("ReadTimeout", "ConnectionError")
    neighbour.close()


# -- readiness --------------------------------------------------------------------------------------


def test_the_registry_reports_each_services_latest_client_and_forgets_a_closed_one():
    first = neighbours.Neighbour("svc-a", "tsa", down_url(), FAST)
    second = neighbours.Neighbour("svc-a", "tsa", down_url(), FAST, required=True)
    other = neighbours.Neighbour("svc-b", "portal", down_url(), FAST)
    assert neighbours.of_service("svc-a") == [second]
    first.close()  # an older client closing does not hide the current one
    assert neighbours.of_service("svc-a") == [second]
    second.close()
    other.close()
    assert neighbours.of_service("svc-a") == [] and neighbours.of_service("svc-b") == []
