"""The lookup's table (models.dossier_lookups): a code's secret HMAC and wrong guesses, in plain SQL
valid on SQLite (3.35+) and PostgreSQL; each write one atomic statement, so concurrent guesses all count."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from services.dossier.lookup import Guesses
from services.dossier.models import dossier_lookups
from shared import deferred
from shared.db import UTCDateTime
from shared.uow import Transaction

_T = dossier_lookups.name
_GET = sa.select(
    dossier_lookups.c.secret_hmac, dossier_lookups.c.failures, dossier_lookups.c.locked_until
).where(dossier_lookups.c.code == sa.bindparam("code"))
_SET_SECRET = sa.text(
    f"INSERT INTO {_T} (code, secret_hmac, failures, locked_until) VALUES (:code, :secret_hmac, 0, NULL) "
    f"ON CONFLICT (code) DO UPDATE SET secret_hmac = :secret_hmac, failures = 0, locked_until = NULL"
)
_FAILED = sa.text(
    f"INSERT INTO {_T} (code, secret_hmac, failures, locked_until) VALUES (:code, NULL, 1, NULL) "
    f"ON CONFLICT (code) DO UPDATE SET failures = {_T}.failures + 1 RETURNING failures"
)
_LOCK = sa.text(f"UPDATE {_T} SET failures = 0, locked_until = :until WHERE code = :code").bindparams(
    sa.bindparam("until", type_=UTCDateTime())
)
_RESET = sa.text(f"UPDATE {_T} SET failures = 0 WHERE code = :code AND failures > 0")


class Lookups:
    """The lookup rows of a transaction."""

    def __init__(self, tx: Transaction) -> None:
        self.session = tx.session

    def get(self, code: str) -> Guesses | None:
        row = self.session.execute(_GET, {"code": code}).first()
        return None if row is None else Guesses(row.secret_hmac, row.failures, row.locked_until)

    def set_secret(self, code: str, secret_hmac: str) -> None:
        """A new secret for ``code``: the old one stops working, and past guesses are forgotten."""
        # Nothing reads what it returns: on PostgreSQL it goes with the transaction's other writes.
        deferred.write(self.session, _SET_SECRET, [{"code": code, "secret_hmac": secret_hmac}])

    def failed(self, code: str, *, max_failures: int, until: datetime) -> None:
        """One more wrong guess; the ``max_failures``-th locks the code until ``until``."""
        failures = self.session.execute(_FAILED, {"code": code}).scalar_one()
        if failures >= max_failures:
            self.session.execute(_LOCK, {"code": code, "until": until})

    def succeeded(self, code: str) -> None:
        self.session.execute(_RESET, {"code": code})
