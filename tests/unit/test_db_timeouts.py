"""What bounds a wait on PostgreSQL (shared/db.py), derived from DATABASE_TIMEOUT_SECONDS.

The rule (docs/operations.md, DATABASE_TIMEOUT_SECONDS): a statement may run that long; a lock is waited
for two thirds of it, at least 5 s and never longer than the statement; a connection that stops answering is
found dead in about the same time, by keepalives when idle (idle, then three probes) and by
``tcp_user_timeout`` when data goes unacknowledged; the server applies the same bounds to its side.
"""

from __future__ import annotations

from shared.db import postgresql_connect_args


def server_settings(options: str) -> dict[str, str]:
    words = options.split()
    assert words[::2] == ["-c"] * (len(words) // 2)
    return dict(word.split("=", 1) for word in words[1::2])


def test_the_default_fifteen_seconds():
    args = postgresql_connect_args(15)
    # idle 15 // 3 = 5 s, then 3 probes 15 // 6 = 2 s apart: a dead idle connection is known in 11 s.
    assert (args["keepalives"], args["keepalives_idle"], args["keepalives_interval"]) == (1, 5, 2)
    assert (args["keepalives_count"], args["tcp_user_timeout"]) == (3, 15_000)
    assert server_settings(args["options"]) == {
        "statement_timeout": "15s",
        "lock_timeout": "10s",
        "idle_in_transaction_session_timeout": "30s",
        "tcp_keepalives_idle": "5",
        "tcp_keepalives_interval": "2",
        "tcp_keepalives_count": "3",
        "tcp_user_timeout": "15000",
    }


def test_a_short_timeout_keeps_every_bound_positive_and_the_lock_wait_within_the_statement():
    args = postgresql_connect_args(2)
    settings = server_settings(args["options"])
    assert settings["statement_timeout"] == "2s" and settings["lock_timeout"] == "2s"
    assert args["keepalives_idle"] == args["keepalives_interval"] == 1 and args["tcp_user_timeout"] == 2000


def test_a_long_timeout_waits_two_thirds_of_it_for_a_lock():
    settings = server_settings(postgresql_connect_args(600)["options"])
    assert settings["statement_timeout"] == "600s" and settings["lock_timeout"] == "400s"
