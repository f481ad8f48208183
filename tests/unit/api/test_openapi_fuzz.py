"""schemathesis against the OpenAPI document: a few generated requests per operation, as an administrator.

No answer may be a server error, and every answer must match the document (status codes and bodies).
A handful of examples per operation keeps the run well under a minute.
"""

from __future__ import annotations

import time
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from .conftest import build_world

EXAMPLES_PER_OPERATION = 4
BUDGET_SECONDS = 60


def test_every_operation_answers_without_server_errors(tmp_path: Path) -> None:
    world = build_world(tmp_path)
    try:
        schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", world.client.app)
        headers = {"Authorization": f"Bearer {world.tokens['root']}"}
        started = time.monotonic()
        failures: list[str] = []
        calls: list[str] = []
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 30

        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: schemathesis.Case) -> None:
                calls.append(case.operation.label)
                case.call_and_validate(
                    headers=headers, checks=[not_a_server_error, response_schema_conformance, status_code_conformance]
                )

            try:
                run()
            except Exception as exc:  # collect every operation's failure, not just the first
                failures.append(f"{operation.label}: {exc}")
        assert not failures, "\n\n".join(failures)
        assert set(calls) == {op.label for op in operations}  # every operation was exercised
        assert time.monotonic() - started < BUDGET_SECONDS
    finally:
        world.client.close()
        world.rt.close()
