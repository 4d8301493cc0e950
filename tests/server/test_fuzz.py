"""Schemathesis fuzzes every operation of /openapi.json against the real server, a bounded number of examples
each: no 5xx, and every answer (errors too) matches the published schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.memscope_server import KEYS, ServerProcess
from tests.support.scripted_server import BUILTIN_MODES, ScriptedServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]
EXAMPLES = 12  # per operation; the fuzzing stays within a CI budget


def test_no_server_errors_and_answers_match_the_schema(server: ServerProcess, model_server: ScriptedServer) -> None:
    model_server.default(None, BUILTIN_MODES["consolidation"])  # jobs the fuzzer queues finish quickly
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    headers = {"Authorization": f"Bearer {KEYS['acme']}"}
    checks = [status_code_conformance, content_type_conformance, response_schema_conformance]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 19

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call(headers=headers, timeout=60)
            where = f"{case.method} {case.formatted_path}"
            assert response.status_code < 500, f"{where}: {response.status_code} {response.text}"
            case.validate_response(response, checks=checks)

        fuzz()
    assert "Traceback" not in server.output()
