"""Schema-driven fuzzing of a running service with schemathesis: every answer checked against the document.

schemathesis (pinned in the dev environment) reads the served /api/v1/openapi.json and sends valid and
invalid requests to every operation; each response goes through every check schemathesis has (no 5xx, a
documented status, content type, headers and body, invalid data refused, valid data accepted, 405 with
``Allow``, authentication not ignored …). Bounded: ``examples`` per operation, mode and set of path values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.generation.modes import GenerationMode

# Valid data may still be refused by a rule the schema cannot state (an unknown procedure code, a unit
# outside the map, a date in the future): a 422 naming the field, as the documents say.
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "422", "429"]
            }
        }
    }
)


def all_checks() -> list:
    load_all_checks()
    return list(CHECKS.get_all())


def nonconforming(
    base: str,
    headers: Mapping[str, str],
    *,
    path_values: Iterable[Mapping[str, str] | None] = (None,),
    examples: int = 6,
) -> tuple[int, list[str]]:
    """Requests sent, and a line per failed check (one per check and operation: the first case)."""
    schema = schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json", config=CONFIG, timeout=10)
    checks = all_checks()
    failures: dict[tuple[str, str], str] = {}
    calls = 0
    path_values = list(path_values)
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for path_parameters in path_values:
                if path_parameters and not all(f"{{{name}}}" in operation.path for name in path_parameters):
                    continue
                strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

                @settings(
                    max_examples=examples,
                    deadline=None,
                    database=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=strategy)
                def send(case) -> None:
                    nonlocal calls
                    response = case.call(base_url=base, headers=dict(headers), timeout=10)
                    calls += 1
                    try:
                        case.validate_response(response, checks=checks, headers=dict(headers))
                    except (Failure, FailureGroup) as exc:
                        for failure in exc.exceptions if isinstance(exc, FailureGroup) else (exc,):
                            key = (f"{case.operation.method.upper()} {case.operation.path}", failure.title)
                            failures.setdefault(
                                key,
                                f"{key[0]}: {failure.title} ({case.meta.generation.mode.value}; "
                                f"{response.status_code} to "
                                f"{case.method} {case.formatted_path}): {failure.message.strip()[:400]}",
                            )

                try:
                    send()
                except Unsatisfiable:
                    continue  # nothing to negate (an operation without parameters or body)
    return calls, list(failures.values())
