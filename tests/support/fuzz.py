"""Schema-driven fuzzing of a running service with schemathesis: every 5xx answer is collected.

schemathesis (pinned in the dev environment) reads the served /api/v1/openapi.json and sends valid and
invalid requests to every operation. Bounded: ``examples`` per operation, mode and set of path values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode


def server_errors(
    base: str,
    headers: Mapping[str, str],
    *,
    path_values: Iterable[Mapping[str, str] | None] = (None,),
    examples: int = 6,
) -> tuple[int, list[str]]:
    """Requests sent, and a line per response ≥ 500."""
    schema = schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json", timeout=10)
    failures: list[str] = []
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
                    if response.status_code >= 500:
                        failures.append(
                            f"{response.status_code} {case.method} {case.formatted_path}: {response.text}"
                        )

                try:
                    send()
                except Unsatisfiable:
                    continue  # nothing to negate (an operation without parameters or body)
    return calls, failures
