"""Property-based API test: schemathesis fuzzes every operation of the OpenAPI schema in-process.

Two champions are trained on synthetic data (a classifier, ``dropout.dropout.semester_1``, and a
regressor, ``exam_scores.math.with_other_scores``), so generated requests that pass validation reach
real scoring, explanation, what-if and store code. The only check is ``not_a_server_error``: whatever
a client sends, the answer is a 2xx/4xx, never a 5xx (an unhandled exception also fails the test).

Requests carry an admin key, so the admin-only model routes (promote, rollback) are exercised too;
they act on the temporary registry of this module only. Nothing is excluded: ``/readyz`` may answer
503 by design, but only when the database is down or no champion exists, and neither is true here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from retain.data.spec import load_spec  # noqa: E402
from retain.data.synth import synthesize_to_file  # noqa: E402
from retain.serving.app import create_app  # noqa: E402
from retain.serving.security import Principal, StaticKeys  # noqa: E402
from retain.settings import get_settings  # noqa: E402
from retain.training.train import TrainOptions, train  # noqa: E402

ADMIN = {"X-API-Key": "admin-secret"}
KEYS = StaticKeys({"admin-secret": Principal("k-admin", "admin")})
MAX_EXAMPLES = 20


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    home = tmp_path_factory.mktemp("schemathesis-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("RETAIN_HOME", str(home))
    mp.setenv("RETAIN_API_MAX_BATCH", "20")
    get_settings.cache_clear()
    options = TrainOptions(baselines=(), importance=False)
    for dataset, task, stage, rows in (
        ("dropout", "dropout", "semester_1", 600),
        ("exam_scores", "math", "with_other_scores", 400),
    ):
        data = home / f"{dataset}.csv"
        synthesize_to_file(load_spec(dataset), rows, data, seed=31)
        train(dataset, task, stage, TrainOptions(**{**options.__dict__, "data_path": data}))
    app = create_app(get_settings(), auth=KEYS)
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    mp.undo()
    get_settings.cache_clear()


def _fuzz(operation: schemathesis.APIOperation, mode: schemathesis.GenerationMode) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.target, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        response = case.call(headers=ADMIN)
        case.validate_response(response, checks=[not_a_server_error])

    run()


def test_no_generated_request_gets_a_server_error(api_schema: schemathesis.BaseSchema) -> None:
    # Not ``schemathesis.pytest.from_fixture``: its lazy runner writes ``Function._nodeid``, which
    # pytest 9.2 no longer has. Running each operation's strategy under Hypothesis directly tests
    # the same requests and reports every failing operation at once.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15, [op.label for op in operations]
    failures: list[str] = []
    for operation in operations:
        for mode in schemathesis.GenerationMode:
            try:
                _fuzz(operation, mode)
            except Exception as exc:  # report them all, not only the first
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)
