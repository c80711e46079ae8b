"""The AWS Terraform (infra/terraform): formatting, checkov, and what the code must agree with.

``terraform fmt`` and checkov come from ``.venv-infra`` (``make infra-env``); when one is
missing the test fails under ``CI`` and is skipped otherwise. The structural checks read the HCL
with small regular expressions (no provider download, no python-hcl2): every variable used is
declared, both environments set the same declared variables, Terraform 1.0 is allowed and the
provider is pinned, the Lambda command names a real handler, and every ``RETAIN_*`` name given
to a task or the Lambda is a real setting.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from retain.settings import Settings
from retain.streaming import lambda_handler

REPO_ROOT = Path(__file__).resolve().parents[3]
TF_DIR = REPO_ROOT / "infra" / "terraform"
INFRA_BIN = REPO_ROOT / ".venv-infra" / "bin"
ENVS = ("staging", "prod")
ECR_REPOSITORIES = {"retain-api", "retain-worker", "retain-dashboard", "retain-mlflow", "retain-lambda"}

SKIP_RE = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")


# ----------------------------------------------------------------------------- helpers


def _tool(name: str) -> str:
    """The path of an infra tool (.venv-infra first, then PATH); fail under CI, else skip."""
    candidate = INFRA_BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    reason = f"{name} not found in {INFRA_BIN} or on PATH (make infra-env)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _strip_comments(text: str) -> str:
    """HCL without ``#`` and ``//`` comments (quotes respected; no heredocs are used here)."""
    out: list[str] = []
    for line in text.splitlines():
        in_string = False
        escaped = False
        cut = len(line)
        for i, ch in enumerate(line):
            if in_string:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == '"':
                    in_string = False
            elif ch == '"':
                in_string = True
            elif ch == "#" or line.startswith("//", i):
                cut = i
                break
        out.append(line[:cut])
    return "\n".join(out)


def _tf_files() -> list[Path]:
    return sorted(TF_DIR.rglob("*.tf"))


def _code(path: Path) -> str:
    return _strip_comments(path.read_text(encoding="utf-8"))


def _all_code() -> str:
    return "\n".join(_code(p) for p in _tf_files())


def _declared_variables() -> dict[str, str]:
    """Variable name -> its block's text."""
    text = _code(TF_DIR / "variables.tf")
    blocks = re.split(r'(?m)^variable\s+"', text)[1:]
    return {block.split('"', 1)[0]: block for block in blocks}


def _tfvars_keys(env: str) -> set[str]:
    """Top-level assignments of envs/<env>.tfvars (terraform fmt keeps them at column 0)."""
    text = _strip_comments((TF_DIR / "envs" / f"{env}.tfvars").read_text(encoding="utf-8"))
    return set(re.findall(r"(?m)^([A-Za-z_][A-Za-z0-9_-]*)\s*=", text))


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def _satisfies(version: str, constraint: str) -> bool:
    """Whether ``version`` meets a Terraform version constraint (``>= 1.0, < 2.0``, ``~> 1.0``)."""
    have = _version_tuple(version)
    for part in constraint.split(","):
        match = re.fullmatch(r"\s*(>=|<=|!=|~>|>|<|=)?\s*v?([0-9]+(?:\.[0-9]+)*)\s*", part)
        assert match, f"cannot read version constraint {part!r}"
        op, raw = match.group(1) or "=", match.group(2)
        want = _version_tuple(raw)
        width = max(len(have), len(want))
        h = have + (0,) * (width - len(have))
        w = want + (0,) * (width - len(want))
        if op == "~>":  # ~> 5.31 is >= 5.31, < 6; ~> 5.31.0 is >= 5.31.0, < 5.32
            k = max(1, len(want) - 1)
            upper = (*want[: k - 1], want[k - 1] + 1)
            u = upper + (0,) * (width - len(upper))
            ok = w <= h < u
        else:
            ok = {
                "=": h == w,
                "!=": h != w,
                ">": h > w,
                ">=": h >= w,
                "<": h < w,
                "<=": h <= w,
            }[op]
        if not ok:
            return False
    return True


def _block(text: str, header_re: str) -> str:
    """The body of the first block whose header matches (braces balanced; strings ignored)."""
    match = re.search(header_re + r"\s*\{", text)
    assert match, f"no block matching {header_re!r}"
    depth, start = 0, match.end() - 1
    in_string = False
    for i in range(start, len(text)):
        ch = text[i]
        if ch == '"' and text[i - 1] != "\\":
            in_string = not in_string
        elif not in_string and ch == "{":
            depth += 1
        elif not in_string and ch == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
    raise AssertionError(f"unbalanced block {header_re!r}")


def _locals() -> dict[str, str]:
    """Simple string locals (``name = "value"``) of every locals block."""
    found: dict[str, str] = {}
    for m in re.finditer(r'(?m)^\s*([a-z_][a-z0-9_]*)\s*=\s*"([^"$]*)"\s*$', _all_code()):
        found.setdefault(m.group(1), m.group(2))
    return found


def _inline_skips() -> list[tuple[Path, int, str, str]]:
    """Every ``#checkov:skip=ID:reason`` in the Terraform: (file, line, id, reason)."""
    skips = []
    for path in _tf_files():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for m in SKIP_RE.finditer(line):
                skips.append((path, n, m.group(1), (m.group(2) or "").strip()))
    return skips


# ----------------------------------------------------------------------------- tools


def test_terraform_fmt_is_clean() -> None:
    terraform = _tool("terraform")
    proc = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(TF_DIR)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"terraform fmt would change files:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="module")
def checkov_report() -> dict[str, Any]:
    """One checkov run over infra/terraform (offline: --skip-download), all results."""
    checkov = _tool("checkov")
    proc = subprocess.run(
        [
            checkov,
            "-d",
            str(TF_DIR),
            "--framework",
            "terraform",
            "--compact",
            "-o",
            "json",
            "--skip-download",
            "--download-external-modules",
            "false",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO_ROOT,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
    )
    assert proc.stdout.strip(), f"checkov printed nothing (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    report = json.loads(proc.stdout)
    if isinstance(report, list):  # one entry per framework
        report = next(r for r in report if r.get("check_type") == "terraform")
    return report


def test_checkov_reports_no_failed_check(checkov_report: dict[str, Any]) -> None:
    summary = checkov_report["summary"]
    failed = checkov_report["results"].get("failed_checks", [])
    lines = [f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}" for c in failed]
    assert not failed, "checkov failed checks:\n" + "\n".join(lines)
    assert summary["parsing_errors"] == 0
    # checkov really looked: many resources, hundreds of passed checks.
    assert summary["resource_count"] >= 100
    assert summary["passed"] >= 300


def test_checkov_evaluated_the_key_controls(checkov_report: dict[str, Any]) -> None:
    """The checks that guard the brief's requirements ran on the right resources and passed."""
    # Instances of for_each resources are named main["input"] or main, depending on whether
    # checkov could expand the collection: compare without the key.
    passed = {
        (c["check_id"], re.sub(r"\[.*\]$", "", c["resource"]))
        for c in checkov_report["results"].get("passed_checks", [])
    }
    expected = {
        ("CKV_AWS_145", "aws_s3_bucket.artifacts"),  # KMS encryption of the artifact bucket
        ("CKV_AWS_21", "aws_s3_bucket.artifacts"),  # versioning
        ("CKV_AWS_18", "aws_s3_bucket.artifacts"),  # access logging
        ("CKV_AWS_43", "aws_kinesis_stream.main"),  # stream encryption
        ("CKV_AWS_185", "aws_kinesis_stream.main"),  # with a customer-managed key
        ("CKV_AWS_50", "aws_lambda_function.stream"),  # X-Ray tracing
        ("CKV_AWS_117", "aws_lambda_function.stream"),  # in a VPC
        ("CKV_AWS_115", "aws_lambda_function.stream"),  # concurrency limit
        ("CKV_AWS_51", "aws_ecr_repository.main"),  # immutable tags
        ("CKV_AWS_16", "aws_db_instance.main"),  # RDS encrypted
        ("CKV_AWS_161", "aws_db_instance.main"),  # IAM authentication
        ("CKV_AWS_157", "aws_db_instance.main"),  # multi-AZ (default)
        ("CKV_AWS_158", "aws_cloudwatch_log_group.service"),  # log group KMS
        ("CKV_AWS_103", "aws_lb_listener.https"),  # TLS 1.2+
        ("CKV2_AWS_11", "aws_vpc.main"),  # flow logs
    }
    missing = sorted(expected - passed)
    assert not missing, f"expected checkov to pass these checks: {missing}"


def test_every_checkov_skip_has_a_reason_and_is_used(checkov_report: dict[str, Any]) -> None:
    skips = _inline_skips()
    assert skips, "expected the documented skips"
    for path, line, check_id, reason in skips:
        where = f"{path.relative_to(REPO_ROOT)}:{line}"
        assert len(reason) >= 20, f"{where}: skip of {check_id} needs a reason (#checkov:skip=ID:reason)"
    skipped = checkov_report["results"].get("skipped_checks", [])
    applied = {c["check_id"] for c in skipped}
    for path, line, check_id, _ in skips:
        # A skip checkov never applies is stale: the check passes or the id is wrong.
        assert check_id in applied, (
            f"{path.relative_to(REPO_ROOT)}:{line}: {check_id} is skipped but never fires"
        )
    for c in skipped:
        assert (c.get("check_result", {}).get("suppress_comment") or "").strip(), f"no reason for {c}"
    readme = (TF_DIR / "README.md").read_text(encoding="utf-8")
    for check_id in {s[2] for s in skips}:
        assert check_id in readme, f"README.md does not explain the skip of {check_id}"


# ----------------------------------------------------------------------------- structure


def test_every_variable_used_is_declared_and_every_declared_one_used() -> None:
    declared = set(_declared_variables())
    used = set(re.findall(r"\bvar\.([A-Za-z_][A-Za-z0-9_-]*)", _all_code()))
    assert used - declared == set(), f"undeclared variables: {sorted(used - declared)}"
    assert declared - used == set(), f"declared but never used: {sorted(declared - used)}"


def test_both_environments_set_the_same_declared_variables() -> None:
    declared = _declared_variables()
    keys = {env: _tfvars_keys(env) for env in ENVS}
    assert keys["staging"] == keys["prod"], (
        f"only in staging: {sorted(keys['staging'] - keys['prod'])}; "
        f"only in prod: {sorted(keys['prod'] - keys['staging'])}"
    )
    for env in ENVS:
        assert keys[env] <= set(declared), f"{env}.tfvars sets undeclared {sorted(keys[env] - set(declared))}"
        required = {name for name, body in declared.items() if not re.search(r"(?m)^\s*default\s*=", body)}
        assert required <= keys[env], f"{env}.tfvars lacks required {sorted(required - keys[env])}"
        text = (TF_DIR / "envs" / f"{env}.tfvars").read_text(encoding="utf-8")
        assert re.search(rf'(?m)^environment\s*=\s*"{env}"', text), f"{env}.tfvars must set environment"


def test_prod_keeps_the_safety_switches_on() -> None:
    text = (TF_DIR / "envs" / "prod.tfvars").read_text(encoding="utf-8")
    for name in ("db_multi_az", "db_deletion_protection", "alb_deletion_protection"):
        assert re.search(rf"(?m)^{name}\s*=\s*true\b", text), f"prod must set {name} = true"


def test_terraform_1_0_is_allowed_and_providers_are_pinned() -> None:
    versions = _code(TF_DIR / "versions.tf")
    match = re.search(r'required_version\s*=\s*"([^"]+)"', versions)
    assert match, "versions.tf must set required_version"
    constraint = match.group(1)
    for version in ("1.0.0", "1.0.3"):
        assert _satisfies(version, constraint), f"required_version {constraint!r} excludes {version}"
    providers = _block(versions, r"required_providers")
    aws = _block(providers, r"\baws\s*=")
    assert re.search(r'source\s*=\s*"hashicorp/aws"', aws)
    pin = re.search(r'version\s*=\s*"([^"]+)"', aws)
    assert pin, "hashicorp/aws must be pinned"
    assert "~>" in pin.group(1) or "<" in pin.group(1), f"no upper bound in {pin.group(1)!r}"
    assert _satisfies("5.31.0", pin.group(1)) and not _satisfies("6.0.0", pin.group(1))
    assert re.search(r'backend\s+"s3"\s*\{\s*\}', versions), "expected a partial S3 backend"


def test_no_language_features_newer_than_terraform_1_0() -> None:
    code = _all_code()
    newer = {
        "optional() object attributes (1.3)": r"\boptional\(",
        "moved blocks (1.1)": r"(?m)^\s*moved\s*\{",
        "import blocks (1.5)": r"(?m)^\s*import\s*\{",
        "check blocks (1.5)": r'(?m)^\s*check\s+"',
        "removed blocks (1.7)": r"(?m)^\s*removed\s*\{",
        "pre/postconditions (1.2)": r"(?m)^\s*(precondition|postcondition)\s*\{",
        "nullable variables (1.1)": r"(?m)^\s*nullable\s*=",
        "replace_triggered_by (1.2)": r"\breplace_triggered_by\b",
    }
    found = [name for name, pattern in newer.items() if re.search(pattern, code)]
    assert not found, f"needs a Terraform newer than 1.0: {found}"


def test_backends_configure_s3_state_with_locking() -> None:
    for env in ENVS:
        text = (TF_DIR / "backend" / f"{env}.hcl").read_text(encoding="utf-8")
        keys = dict(re.findall(r'(?m)^([a-z_]+)\s*=\s*"?([^"\n]*)"?\s*$', _strip_comments(text)))
        for key in ("bucket", "key", "region", "dynamodb_table"):
            assert keys.get(key), f"backend/{env}.hcl lacks {key}"
        assert keys.get("encrypt") == "true", f"backend/{env}.hcl must encrypt the state"
        assert env in keys["key"] and env in keys["bucket"], f"backend/{env}.hcl must name its environment"


def test_lambda_image_command_is_a_real_handler() -> None:
    lambda_tf = _code(TF_DIR / "lambda.tf")
    function = _block(lambda_tf, r'resource\s+"aws_lambda_function"\s+"stream"')
    assert re.search(r'package_type\s*=\s*"Image"', function)
    command = re.search(r"command\s*=\s*\[\s*([^\]]+?)\s*\]", _block(function, r"image_config"))
    assert command, "the image_config must name the handler"
    value = command.group(1).strip()
    if value.startswith("local."):
        value = _locals()[value.removeprefix("local.")]
    value = value.strip('"')
    module_name, _, attr = value.rpartition(".")
    module = importlib.import_module(module_name)
    assert callable(getattr(module, attr, None)), f"{value} is not a function"
    assert value == "retain.streaming.lambda_handler.handler"
    # The handler answers batchItemFailures: the mapping must ask for partial batch responses.
    assert lambda_handler.failure_response(["1"]) == {"batchItemFailures": [{"itemIdentifier": "1"}]}
    mapping = _block(lambda_tf, r'resource\s+"aws_lambda_event_source_mapping"\s+"stream"')
    assert re.search(r'function_response_types\s*=\s*\[\s*"ReportBatchItemFailures"\s*\]', mapping)
    assert "on_failure" in mapping, "records that keep failing need an on-failure destination"


def test_lambda_gets_its_output_and_dead_letter_streams() -> None:
    function = _block(_code(TF_DIR / "lambda.tf"), r'resource\s+"aws_lambda_function"\s+"stream"')
    for env_name, stream in (
        (lambda_handler.OUTPUT_URL_ENV, "output"),
        (lambda_handler.DEAD_LETTER_URL_ENV, "dead_letter"),
    ):
        match = re.search(
            rf'{env_name}\s*=\s*"kinesis://\$\{{aws_kinesis_stream\.main\["{stream}"\]\.name\}}', function
        )
        assert match, f"{env_name} must point at the {stream} Kinesis stream"


def test_retain_names_are_real_settings() -> None:
    """Every RETAIN_* name in the Terraform is a Settings field (or a Lambda handler variable)."""
    known = {f"RETAIN_{name.upper()}" for name in Settings.model_fields}
    known |= {lambda_handler.OUTPUT_URL_ENV, lambda_handler.DEAD_LETTER_URL_ENV}
    assert Settings.model_config.get("env_prefix") == "RETAIN_"
    text = "\n".join(p.read_text(encoding="utf-8") for p in _tf_files())  # comments too
    used = set(re.findall(r"\bRETAIN_[A-Z0-9_]+\b", text))
    assert {"RETAIN_ID_KEY", "RETAIN_ROSTER_KEY", "RETAIN_DATABASE_URL"} <= used
    assert used - known == set(), f"not settings of retain.settings.Settings: {sorted(used - known)}"


def test_secrets_reach_tasks_as_secrets_not_plain_environment() -> None:
    ecs = _code(TF_DIR / "ecs.tf")
    env_blocks = re.findall(r"environment\s*=\s*merge\([^)]*\{([^}]*)\}", ecs, flags=re.S)
    for body in env_blocks:
        for name in ("RETAIN_ID_KEY", "RETAIN_ROSTER_KEY", "RETAIN_DATABASE_URL"):
            assert name not in body, f"{name} must be an ECS secret, not an environment value"
    assert re.search(r"valueFrom\s*=\s*aws_secretsmanager_secret\.app\[", ecs)
    secrets = _code(TF_DIR / "secrets.tf")
    for name in ("RETAIN_ID_KEY", "RETAIN_ROSTER_KEY", "RETAIN_DATABASE_URL"):
        assert re.search(rf"(?m)^\s*{name}\s*=", secrets), f"{name} must be a Secrets Manager secret"


def test_ecr_repositories_and_services() -> None:
    ecr = _code(TF_DIR / "ecr.tf")
    names = set(re.findall(r'"(retain-[a-z]+)"', _block(ecr, r"locals")))
    assert names == ECR_REPOSITORIES
    assert re.search(r'image_tag_mutability\s*=\s*"IMMUTABLE"', ecr)
    assert re.search(r"scan_on_push\s*=\s*true", ecr)
    ecs = _code(TF_DIR / "ecs.tf")
    assert re.search(r'launch_type\s*=\s*"FARGATE"', ecs)
    assert "Fargate" in (TF_DIR / "README.md").read_text(encoding="utf-8")


def test_no_wildcard_action_on_wildcard_resource_in_iam_policies() -> None:
    iam = _code(TF_DIR / "iam.tf")
    for statement in re.findall(r"statement\s*\{(.*?)\n  \}", iam, flags=re.S):
        actions = re.search(r"actions\s*=\s*\[([^\]]*)\]", statement)
        resources = re.search(r"resources\s*=\s*\[([^\]]*)\]", statement)
        if actions and resources:
            assert not ('"*"' in actions.group(1) and '"*"' in resources.group(1)), statement
            assert not re.search(r'"[a-z0-9]+:\*"', actions.group(1)), f"service-wide action in {statement}"


def test_version_constraint_reader() -> None:
    assert _satisfies("1.0.3", ">= 1.0.0, < 2.0.0")
    assert not _satisfies("0.15.5", ">= 1.0.0, < 2.0.0")
    assert _satisfies("5.40.0", "~> 5.31") and not _satisfies("6.0.0", "~> 5.31")
    assert _satisfies("5.31.9", "~> 5.31.0") and not _satisfies("5.32.0", "~> 5.31.0")
    assert not _satisfies("1.0.3", ">= 1.3")


def test_api_scales_on_cpu_and_requests() -> None:
    ecs = _code(TF_DIR / "ecs.tf")
    for metric in ("ECSServiceAverageCPUUtilization", "ALBRequestCountPerTarget"):
        assert re.search(rf'predefined_metric_type\s*=\s*"{metric}"', ecs), f"no API scaling on {metric}"


def test_every_alarm_notifies_the_alarm_topic() -> None:
    monitoring = _code(TF_DIR / "monitoring.tf")
    alarms = re.findall(r'resource\s+"aws_cloudwatch_metric_alarm"\s+"([a-z0-9_]+)"', monitoring)
    assert {"lambda_errors", "lambda_throttles", "kinesis_iterator_age", "api_5xx", "api_latency"} <= set(
        alarms
    )
    assert {"rds_cpu", "rds_free_storage"} <= set(alarms)
    for name in alarms:
        body = _block(monitoring, rf'resource\s+"aws_cloudwatch_metric_alarm"\s+"{name}"')
        assert re.search(r"alarm_actions\s*=\s*local\.alarm_actions", body), f"alarm {name} notifies nobody"
        assert re.search(r'alarm_description\s*=\s*"[^"]{20,}', body), f"alarm {name} needs a description"


def _blocks(text: str, header_re: str) -> list[str]:
    """Bodies of every block whose header matches."""
    bodies = []
    for m in re.finditer(header_re + r"\s*\{", text):
        bodies.append(_block(text[m.start() :], header_re))
    return bodies


def test_every_reference_names_something_defined() -> None:
    """What `terraform validate` would say about references, without the provider."""
    code = _all_code()
    defined_locals = {
        name
        for body in _blocks(code, r"(?m)^locals")
        for name in re.findall(r"(?m)^  ([a-z_0-9]+)\s*=", body)
    }
    used_locals = set(re.findall(r"\blocal\.([a-z_0-9]+)", code))
    assert used_locals <= defined_locals, f"undefined locals: {sorted(used_locals - defined_locals)}"
    resources = set(re.findall(r'(?m)^resource\s+"([a-z0-9_]+)"\s+"([a-z0-9_]+)"', code))
    data = set(re.findall(r'(?m)^data\s+"([a-z0-9_]+)"\s+"([a-z0-9_]+)"', code))
    used_data = set(re.findall(r"\bdata\.([a-z0-9_]+)\.([a-z0-9_]+)", code))
    assert used_data <= data, f"undefined data sources: {sorted(used_data - data)}"
    without_data = re.sub(r"\bdata\.[a-z0-9_]+\.[a-z0-9_]+", "", code)
    used = set(re.findall(r"\b((?:aws|random)_[a-z0-9_]+)\.([a-z0-9_]+)\b", without_data))
    assert used <= resources, f"undefined resources: {sorted(used - resources)}"
