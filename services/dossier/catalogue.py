"""The procedure catalogue (danh mục thủ tục hành chính, TTHC) of the dossier service.

The catalogue is data: YAML files under ``procedures/`` next to this module, one file per field
(lĩnh vực) by convention. Each file looks like::

    field: civil_status          # default for every procedure in the file
    field_name: Hộ tịch
    procedures:
      - code: "1.001193"         # national procedure code (Cơ sở dữ liệu quốc gia về TTHC)
        version: 1
        effective_from: 2016-01-01
        name: Đăng ký khai sinh
        ...

A procedure code may appear with several versions. A dossier keeps the version it was received
under, so lookups are by date (``Catalogue.get(code, at=received_at)``) or by version number
(``Catalogue.get_version``), never "whatever is newest".

This module is the model and the lookups; :mod:`services.dossier.catalogue_files` reads and checks
the files (every problem reported with file, line and key path) and builds the catalogue from them
(``load_catalogue``): the model knows nothing of files.

Plain Python on purpose (no nameko, no SQL): the service, the tests and offline tools such as a
catalogue linter all import it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from shared import clock
from shared.vocabulary import DURATION_UNITS

SHIPPED_DIRECTORY = Path(__file__).resolve().parent / "procedures"

# Vietnam has had no daylight saving time since 1975, so a fixed offset is exact and spares a
# dependency on the system tz database for "which version is in force today".
VIETNAM_TIME = timezone(timedelta(hours=7), "Asia/Ho_Chi_Minh")

LEVELS = ("commune", "district", "province")
STEP_CODES = ("receive", "appraise", "approve", "sign", "stamp", "return", "transfer")
WORKING_DAYS, WORKING_HOURS, SAME_DAY = DURATION_UNITS

# The canonical spelling shared.workcalendar.Duration.parse reads. Stricter than that parser
# (no leading zeros, single spaces) so the files stay uniform and greppable.
_DURATION_RE = re.compile(r"^(?:(?P<amount>[1-9]\d*) (?P<unit>working_days|working_hours)|same_day)$")


def split_duration(text: str) -> tuple[str, int] | None:
    """``(unit, amount)`` of a duration string, ``("same_day", 0)``; None if it is not one."""
    match = _DURATION_RE.match(text)
    if match is None:
        return None
    if match.group("unit") is None:
        return SAME_DAY, 0
    return match.group("unit"), int(match.group("amount"))


# --------------------------------------------------------------------------------------------
# The model


@dataclass(frozen=True)
class Step:
    """One step of a procedure's processing plan, with its share of the total time.

    ``allotment`` is a duration string in the procedure's unit; in a day-based plan a step may
    also take "same_day" (done within the day it starts, using none of the whole days).
    """

    code: str
    name: str
    agency: str
    allotment: str


@dataclass(frozen=True)
class Fee:
    name: str
    amount_vnd: int
    note: str = ""


@dataclass(frozen=True)
class RequiredDocument:
    """A document of the dossier: how many originals (bản chính) and copies (bản sao)."""

    name: str
    original: int = 0
    copies: int = 1


@dataclass(frozen=True)
class Procedure:
    """One version of a TTHC as published, in force from ``effective_from``."""

    code: str
    version: int
    effective_from: date
    name: str
    name_en: str
    field: str
    field_name: str
    levels: tuple[str, ...]
    duration: str
    steps: tuple[Step, ...]
    fees: tuple[Fee, ...]
    required_documents: tuple[RequiredDocument, ...]
    channels: tuple[str, ...]
    postal_return: bool
    online_level: str | None
    legal_basis: tuple[str, ...]
    # The version stops applying on this date (procedure abolished or moved), exclusive.
    repealed_from: date | None = None
    # Free text for maintainers: sources, what is unconfirmed, province-specific values.
    note: str = ""
    # "procedures/land.yaml:12", so runtime errors can point back at the data.
    source: str = field(default="", compare=False)

    @property
    def agencies(self) -> tuple[str, ...]:
        """The handling agencies of the plan, in order of first appearance, desk excluded."""
        seen: dict[str, None] = {}
        for step in self.steps:
            if step.agency != "receiving_unit":
                seen.setdefault(step.agency)
        return tuple(seen)

    @property
    def interlinked(self) -> bool:
        """Một cửa liên thông: more than one competent agency handles the dossier.

        The receiving desk does not count: every procedure passes through it, and the desk
        belongs to the handling level anyway.
        """
        return len(self.agencies) > 1

    def in_force(self, on: date) -> bool:
        return self.effective_from <= on and (self.repealed_from is None or on < self.repealed_from)


@dataclass(frozen=True)
class Problem:
    file: str  # as shown to people: "procedures/land.yaml"
    line: int | None
    path: str  # "procedures[3].steps[1].allotment"; "" for the whole file
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class CatalogueError(ValueError):
    """The catalogue files are wrong. Lists every problem found, each with file, line and key."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


class UnknownProcedure(KeyError):
    """No procedure (or no version of it in force at the given date) under that code."""

    def __init__(
        self, code: str, at: date | None = None, version: int | None = None, known: str = ""
    ) -> None:
        self.code, self.at, self.version = code, at, version
        if not known:
            message = f"unknown procedure {code!r}"
            if at is not None:
                message += f" (looked up for {at.isoformat()})"
        elif version is not None:
            message = f"procedure {code} has no version {version}; it has {known}"
        else:
            message = f"no version of procedure {code} in force on {at}; it has {known}"
        super().__init__(message)

    def __str__(self) -> str:
        # KeyError would repr() the message, quotes included
        return str(self.args[0])


def _day(at: date | datetime | None) -> date:
    if at is None:
        return clock.now().astimezone(VIETNAM_TIME).date()
    if isinstance(at, datetime):  # before the date check: datetime is a date subclass
        # naive datetimes are taken as Vietnam local time, aware ones converted to it
        return at.astimezone(VIETNAM_TIME).date() if at.tzinfo else at.date()
    return at


class Catalogue:
    """Every version of every procedure, looked up by code and date or version."""

    def __init__(self, procedures: Iterable[Procedure]) -> None:
        self._versions: dict[str, tuple[Procedure, ...]] = {}
        grouped: dict[str, list[Procedure]] = {}
        for procedure in procedures:
            grouped.setdefault(procedure.code, []).append(procedure)
        for code in sorted(grouped):
            self._versions[code] = tuple(sorted(grouped[code], key=lambda p: p.version))

    def get(self, code: str, at: date | datetime | None = None) -> Procedure:
        """The version of ``code`` in force at ``at`` (default: today, Vietnam time).

        For a dossier pass its receipt time: it is handled under the rules it was received
        under, even if the procedure changed since.
        """
        day = _day(at)
        candidates = [p for p in self._versions.get(code, ()) if p.effective_from <= day]
        if not candidates or not candidates[-1].in_force(day):
            raise UnknownProcedure(code, at=day, known=self._describe(code))
        return candidates[-1]

    def get_version(self, code: str, version: int) -> Procedure:
        for procedure in self._versions.get(code, ()):
            if procedure.version == version:
                return procedure
        raise UnknownProcedure(code, version=version, known=self._describe(code))

    def _describe(self, code: str) -> str:
        """ "version 1 from 2021-01-04 (until 2025-07-01), version 2 from 2025-07-01", or ""."""
        return ", ".join(
            f"version {p.version} from {p.effective_from}"
            + (f" (until {p.repealed_from})" if p.repealed_from else "")
            for p in self._versions.get(code, ())
        )

    def versions(self, code: str) -> tuple[Procedure, ...]:
        """All versions of ``code``, oldest first."""
        if code not in self._versions:
            raise UnknownProcedure(code)
        return self._versions[code]

    def in_force(self, at: date | datetime | None = None) -> tuple[Procedure, ...]:
        """The version of each procedure in force at ``at`` (default today), by code."""
        day = _day(at)
        found = []
        for code in self._versions:
            try:
                found.append(self.get(code, day))
            except UnknownProcedure:
                continue
        return tuple(found)

    def codes(self) -> tuple[str, ...]:
        """Every code in the catalogue, in force today or not."""
        return tuple(self._versions)

    def fields(self) -> dict[str, str]:
        """Field code -> field name, over every version (a field does not vanish with a repeal)."""
        names = {
            procedure.field: procedure.field_name
            for versions in self._versions.values()
            for procedure in versions
        }
        return dict(sorted(names.items()))

    def __contains__(self, code: object) -> bool:
        return code in self._versions

    def __iter__(self) -> Iterator[Procedure]:
        return iter(self.in_force())

    def __len__(self) -> int:
        return len(self.in_force())
