"""Property-based API test: schemathesis fuzzes every operation of the OpenAPI schema in-process.

Two champions are trained on synthetic data (a classifier, ``dropout.dropout.semester_1``, and a
regressor, ``exam_scores.math.with_other_scores``). The only check is ``not_a_server_error``:
whatever a client sends, the answer is a 2xx/4xx, never a 5xx (an unhandled exception also fails).

Purely schema-generated students are almost always rejected (the schema documents codes and ranges
in descriptions, not as constraints), and free path parameters almost never name a real dataset,
model, student or prediction. So schema hooks also draw real values: known dataset and model names,
synthetic students (some with one field replaced by a generated value), actionable what-if changes,
and the ids of predictions made before the run. That way generated requests reach scoring,
explanations, what-if, the store and the registry, not only validation.

Requests carry an admin key, so the admin-only model routes (promote, rollback) are exercised too;
they act on this module's temporary registry only. Nothing is excluded: ``/readyz`` answers 503 by
design only when the database is down or no champion exists, and neither is true here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

schemathesis = pytest.importorskip("schemathesis")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.core.failures import FailureGroup  # noqa: E402

from retain.data.spec import load_spec  # noqa: E402
from retain.data.synth import synthesize  # noqa: E402
from retain.serving.app import create_app  # noqa: E402
from retain.serving.security import Principal, StaticKeys  # noqa: E402
from retain.settings import get_settings  # noqa: E402

ADMIN = {"X-API-Key": "admin-secret"}
KEYS = StaticKeys({"admin-secret": Principal("k-admin", "admin")})
MAX_EXAMPLES = 20
# Values real clients send by mistake (spreadsheet exports, JavaScript, typos).
AWKWARD: tuple[Any, ...] = ("inf", "-Infinity", "NaN", "", " ", "1e999", None, -1, 1e308, True, "0.5", "١")
TRAINED = (
    ("dropout", "dropout", "semester_1", 800),  # the shared semester_1 champion's data (seed 31)
    ("exam_scores", "math", "with_other_scores", 400),
)


def _students(dataset: str, n: int, seed: int) -> list[dict[str, Any]]:
    """Synthetic records the trained champion accepts (no target, no later-stage columns)."""
    spec = load_spec(dataset)
    frame = synthesize(spec, n, seed=seed)
    if dataset == "dropout":
        frame = frame.drop(columns=["target"])
        frame = frame[[c for c in frame.columns if not c.startswith("units_2nd")]]
    else:
        frame = frame.drop(columns=["math_score"])
    return [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in frame.to_dict("records")]


@pytest.fixture(scope="module")
def trained_home(copy_trained_home: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Synthetic data under the spec's file name in RETAIN_DATA_DIR, so promotion finds it too.
    home = copy_trained_home(tmp_path_factory.mktemp("schemathesis-home"), *TRAINED, seed=31, data_dir=True)
    _register_engagement_model(home)
    return home


def _register_engagement_model(home: Path) -> None:
    """An engagement model (its head untrained: the fuzzing checks answers, not accuracy), so the
    image endpoint is exercised past the model lookup; without one it answers 503 by design."""
    from retain.training import registry as tabular_registry
    from retain.vision import registry
    from retain.vision.backbone import engagement_network
    from retain.vision.runtime import export_onnx

    mp = pytest.MonkeyPatch()
    mp.setenv("RETAIN_HOME", str(home))
    get_settings.cache_clear()
    try:
        onnx_bytes = export_onnx(engagement_network())
        version, _ = registry.log_and_register(
            onnx_bytes, ("Engaged", "Not engaged"), {}, {}, {}, get_settings()
        )
        tabular_registry.set_champion(registry.MODEL_NAME, version)
    finally:
        mp.undo()
        get_settings.cache_clear()


def _real_values(schema: schemathesis.BaseSchema, prediction_ids: list[str]) -> None:
    """Schema hooks that mix real names, ids and students into the generated requests."""
    pools = {name: _students(name, 30, seed=7) for name, *_ in TRAINED}
    datasets = [*pools, "secondary_math"]
    models = [f"{d}.{t}.{s}" for d, t, s, _ in TRAINED] + ["dropout.dropout.enrolment"]
    trained_tasks = {d: t for d, t, *_ in TRAINED}
    student_ids = [r["student_id"] for pool in pools.values() for r in pool[:5]]

    def real_or(value: Any, choices: list[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(st.sampled_from(choices), st.sampled_from(choices), st.just(value))

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: Any) -> st.SearchStrategy[Any]:
        if not isinstance(path_parameters, dict):
            return st.just(path_parameters)
        keys = {"dataset": datasets, "name": models, "student_id": student_ids}
        known = {k: real_or(v, keys[k]) for k, v in path_parameters.items() if k in keys}
        return st.fixed_dictionaries(known).map(lambda drawn: {**path_parameters, **drawn})

    @schema.hook
    def flatmap_query(context: Any, query: Any) -> st.SearchStrategy[Any]:
        if not isinstance(query, dict) or "version" not in query:
            return st.just(query)
        return real_or(query["version"], [1, 2]).map(lambda version: {**query, "version": version})

    def student(dataset: str, generated: Any) -> st.SearchStrategy[dict[str, Any]]:
        """A real student, sometimes with one field set to a generated or an awkward value."""
        base = st.sampled_from(pools[dataset])
        fields = sorted(pools[dataset][0])
        awkward = st.tuples(base, st.sampled_from(fields), st.sampled_from(AWKWARD)).map(
            lambda bfv: {**bfv[0], bfv[1]: bfv[2]}
        )
        if not isinstance(generated, dict) or not generated:
            return st.one_of(base, base, awkward)
        field = st.sampled_from(sorted(generated))
        mutated = st.tuples(base, field).map(lambda bf: {**bf[0], bf[1]: generated[bf[1]]})
        return st.one_of(base, base, mutated, awkward)

    @schema.hook
    def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
        path = context.operation.path
        if not isinstance(body, dict):
            return st.just(body)
        if path.endswith("/{dataset}/feedback") and prediction_ids:
            return real_or(body, [{**body, "prediction_id": p} for p in prediction_ids])
        if path.endswith("/{dataset}/interventions"):
            return real_or(body, [{**body, "student_id": s, "type": "tutoring"} for s in student_ids])
        dataset = path.split("/")[2]
        if dataset not in pools:
            return st.just(body)
        spec = load_spec(dataset)
        task = st.sampled_from([None, *(t.name for t in spec.tasks), trained_tasks[dataset]])
        if path.endswith("/predict"):
            generated = body.get("students")
            first = generated[0] if isinstance(generated, list) and generated else None
            batch = st.lists(student(dataset, first), min_size=1, max_size=5)
            real = st.tuples(batch, task).map(
                lambda bt: {**body, "students": bt[0], "task": bt[1], "stage": None}
            )
            return st.one_of(real, real, st.just(body))
        changes = st.dictionaries(
            st.sampled_from(spec.actionable),
            st.one_of(st.integers(-2, 30), st.floats(allow_nan=False, allow_infinity=False)),
            max_size=2,
        )
        real = st.tuples(student(dataset, body.get("student")), changes, task).map(
            lambda sct: {**body, "student": sct[0], "changes": sct[1], "task": sct[2], "stage": None}
        )
        return st.one_of(real, real, st.just(body))


@pytest.fixture
def api_schema(trained_home: Path, monkeypatch: pytest.MonkeyPatch) -> schemathesis.BaseSchema:
    # The autouse ``isolated_home`` gives each test a fresh home; point this one at the trained home
    # (the predictor and promotion read the global settings, not only the app's).
    monkeypatch.setenv("RETAIN_HOME", str(trained_home))
    monkeypatch.setenv("RETAIN_DATA_DIR", str(trained_home / "data"))
    monkeypatch.setenv("RETAIN_API_MAX_BATCH", "20")
    get_settings.cache_clear()
    app = create_app(get_settings(), auth=KEYS)
    prediction_ids: list[str] = []
    with TestClient(app, raise_server_exceptions=False) as client:
        for dataset, task, *_ in TRAINED:
            body = {"students": _students(dataset, 5, seed=7), "task": task}
            response = client.post(f"/v1/{dataset}/predict", json=body, headers=ADMIN)
            if response.status_code == 200:  # anything else is for the fuzzing to report
                prediction_ids += [p["prediction_id"] for p in response.json()["predictions"]]
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    _real_values(schema, prediction_ids)
    return schema


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


def _describe(exc: BaseException) -> str:
    """The error, its sub-errors and the notes Hypothesis and schemathesis add (curl, seed)."""
    lines = [f"{type(exc).__name__}: {exc}", *getattr(exc, "__notes__", ())]
    for sub in getattr(exc, "exceptions", ()):
        lines.append("  " + _describe(sub).replace("\n", "\n  "))
    return "\n".join(lines)


def test_no_generated_request_gets_a_server_error(api_schema: schemathesis.BaseSchema) -> None:
    # Not ``schemathesis.pytest.from_fixture``: its lazy runner writes ``Function._nodeid``, which
    # pytest 9.2 no longer has. Running each operation's strategy under Hypothesis directly sends
    # the same requests and reports every failing operation at once (each with a curl command and
    # the Hypothesis seed to replay it).
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15, [op.label for op in operations]
    failures: list[str] = []
    for operation in operations:
        for mode in schemathesis.GenerationMode:
            try:
                _fuzz(operation, mode)
            except Unsatisfiable:
                # Negative mode on an operation with no parameters and no body: nothing to make invalid.
                assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
            except (Exception, FailureGroup) as exc:  # report them all, not only the first
                failures.append(f"{operation.label} ({mode.value}): {_describe(exc)}")
    assert not failures, "\n\n".join(failures)


_EXAM_STUDENT = {
    "student_id": "s1",
    "gender": "female",
    "race_ethnicity": "group A",
    "parental_education": "some high school",
    "lunch": "standard",
    "test_preparation": "none",
    "reading_score": 45,
    "writing_score": 24,
}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param(
            "POST",
            "/v1/exam_scores/predict",
            {"students": [_EXAM_STUDENT]},
            id="predict-without-programme-or-time-column",
        ),
        pytest.param(
            "POST",
            "/v1/exam_scores/what-if",
            {"student": {**_EXAM_STUDENT, "gender": "inf"}},
            id="categorical-code-inf",
        ),
        pytest.param(
            "POST",
            "/v1/models/dropout.dropout.semester_1/promote?version=100",
            None,
            id="promote-unknown-version",
        ),
        pytest.param(
            "POST",
            "/v1/models/dropout.dropout.enrolment/promote?version=1",
            None,
            id="promote-unregistered-model",
        ),
    ],
)
def test_requests_that_once_got_a_server_error(
    api_schema: schemathesis.BaseSchema, method: str, path: str, body: dict[str, Any] | None
) -> None:
    """Deterministic replays of what the fuzzing found (the fuzzing may not draw them every run)."""
    with TestClient(api_schema.app, raise_server_exceptions=False) as client:
        response = client.request(method, path, json=body, headers=ADMIN)
    assert response.status_code < 500, response.text
