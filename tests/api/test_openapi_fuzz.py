"""schemathesis against /openapi.json: generated requests to every documented operation find no 5xx
and no response that breaks its own schema. Bounded examples keep CI fast."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from filerelay.api import create_app
from filerelay.runtime import Runtime
from tests.support.keys import ADMIN_KEY
from tests.support.sapclient import SapClient

MAX_EXAMPLES = 25


def test_no_server_errors_and_responses_match_the_schema(configured: Runtime, server: str) -> None:
    # A few real documents, so listings and lookups have rows to serialise.
    sap = SapClient(server + "/archivelink/acme/production")
    for n in range(3):
        assert sap.create(f"FUZZ{n}", "data", b"%PDF fuzz", "application/pdf").status == 201
    schema = schemathesis.openapi.from_wsgi("/openapi.json", create_app(runtime=configured))
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 4
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
            # Generated paths must name the key's workspace, or every call is a (correct) 404.
            if "owner" in (case.path_parameters or {}):
                case.path_parameters = {**case.path_parameters, "owner": "acme", "slug": "production"}
            # Schema-valid bodies naming ids that do not exist are rightly refused (400/404), so the
            # "positive data is accepted" check cannot hold; no 5xx and schema-true answers must.
            case.call_and_validate(
                headers={"Authorization": f"Bearer {ADMIN_KEY}"}, excluded_checks=[positive_data_acceptance]
            )

        check()
