"""The overdue watch's backoff for dossiers it cannot process: delays and the log-once rule."""

from datetime import timedelta

from services.dossier.watch_backoff import MAX_DELAY, WatchBackoff


def test_the_delay_doubles_from_the_watch_interval_up_to_six_hours():
    backoff = WatchBackoff(timedelta(minutes=1))
    delays = [backoff.failed("A")[0] for _ in range(12)]
    # 1, 2, 4, ... 256 minutes, then capped at 6 hours = 360 minutes
    assert delays[:9] == [timedelta(minutes=2**n) for n in range(9)]
    assert delays[9:] == [MAX_DELAY] * 3 == [timedelta(hours=6)] * 3


def test_logged_once_and_forgotten_after_a_success():
    backoff = WatchBackoff(timedelta(minutes=1))
    assert [backoff.failed("A")[1] for _ in range(3)] == [True, False, False]
    assert backoff.failed("B") == (timedelta(minutes=1), True)  # each dossier on its own
    backoff.succeeded("A")
    assert backoff.failures("A") == 0
    assert backoff.failed("A") == (timedelta(minutes=1), True)


def test_a_long_run_of_failures_does_not_overflow():
    backoff = WatchBackoff(timedelta(seconds=60))
    for _ in range(200):
        delay, _ = backoff.failed("A")
    assert delay == MAX_DELAY
