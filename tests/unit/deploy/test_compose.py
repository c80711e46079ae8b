"""compose.yaml: valid for the Compose specification, and in step with the code it runs.

Every ``retain ...`` command is parsed by the real CLI, every ``RETAIN_*`` variable is a field of
the settings (and the values parse), MLflow, Prefect and AWS variables are names those libraries
read, mounted files exist, and the services' ports, scrape targets, databases and secrets agree
with each other. No Docker engine is needed; the schema check uses check-jsonschema from
``.venv-infra`` (``make infra-env``), the Prometheus check promtool (Debian package prometheus).
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer.main
import yaml
from pydantic import ValidationError

from retain.cli import app
from retain.settings import PLACEHOLDER_SECRETS, Settings

try:  # Typer vendors Click (typer._click) in the versions this project pins
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - Typer on top of Click
    from click.exceptions import UsageError

REPO = Path(__file__).resolve().parents[3]
COMPOSE = REPO / "compose.yaml"
ENV_EXAMPLE = REPO / "deploy" / "compose.env.example"
INFRA_BIN = REPO / ".venv-infra" / "bin"

#: Services a user or an operator opens in a browser or calls; nothing else is published.
PUBLISHED = {"api", "dashboard", "grafana", "mlflow", "prefect-server"}


# ----------------------------------------------------------------------------- helpers


def tool(name: str, hint: str) -> Path:
    """A checker from .venv-infra (or PATH for system tools); skip without it, fail under CI."""
    path = INFRA_BIN / name
    if path.exists():
        return path
    found = shutil.which(name)
    if found and not hint.startswith("make"):
        return Path(found)
    reason = f"{name} not installed ({hint})"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines of an env file (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=value: {line!r}"
        values[key.strip()] = value.strip()
    return values


_VAR = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation: ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``, ``$$``."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        value = env.get(name)
        if op in (":-", "-"):
            return value if value or (op == "-" and value is not None) else arg
        if op in (":?", "?") and not value:
            raise AssertionError(f"${{{name}}} is required ({arg}) and compose.env.example lacks it")
        return value or ""

    return _VAR.sub(one, text)


def variables(text: str) -> Iterator[tuple[str, str | None]]:
    """(name, operator) of every ``${...}`` in text."""
    for match in _VAR.finditer(text):
        if match.group("name"):
            yield match.group("name"), match.group("op")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict) and data.get("services"), "compose.yaml has no services"
    return data


@pytest.fixture(scope="module")
def example_env() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def command(service: dict[str, Any], env: dict[str, str]) -> list[str]:
    cmd = service.get("command") or []
    args = shlex.split(cmd) if isinstance(cmd, str) else [str(a) for a in cmd]
    return [interpolate(a, env) for a in args]


def resolve_cli(argv: list[str]) -> Any:
    """Parse ``retain ARGV...`` as the real CLI would (subcommands, options, types), without running it.

    Walks the Typer app's Click groups with ``resolve_command`` and lets the leaf command's
    ``make_context`` parse the rest. Raises ``UsageError`` for an unknown subcommand or option, a
    missing required option, or a value of the wrong type. Returns the leaf command.
    """
    cmd: Any = typer.main.get_command(app)
    path = ["retain"]
    args = list(argv)
    while hasattr(cmd, "resolve_command"):  # a group
        if not args or args[0].startswith("-"):
            raise UsageError(f"`{' '.join(path)}` needs a subcommand, got {args}")
        ctx = cmd.context_class(cmd, info_name=" ".join(path))
        name, sub, args = cmd.resolve_command(ctx, args)
        assert name is not None and sub is not None
        path.append(name)
        cmd = sub
    cmd.make_context(" ".join(path), args)
    return cmd


def retain_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services that run a Retain image."""
    return {
        name: svc
        for name, svc in compose["services"].items()
        if str(svc.get("image", "")).startswith("retain-")
        and not str(svc.get("image", "")).startswith("retain-mlflow")
    }


def _documented_mlflow_names() -> set[str]:
    import mlflow.environment_variables as mlflow_env
    from mlflow.cli import server

    names = {v.name for v in vars(mlflow_env).values() if isinstance(getattr(v, "name", None), str)}
    for param in server.params:
        envvar = param.envvar
        names.update([envvar] if isinstance(envvar, str) else list(envvar or []))
    return names


def _documented_prefect_names() -> set[str]:
    from prefect.settings import Settings as PrefectSettings
    from prefect.settings.legacy import _get_valid_setting_names

    return set(_get_valid_setting_names(PrefectSettings))


def _documented_aws_names() -> set[str]:
    import botocore.configprovider as provider
    from botocore.credentials import EnvProvider

    names = {EnvProvider.ACCESS_KEY, EnvProvider.SECRET_KEY, *EnvProvider.TOKENS}
    for spec in provider.BOTOCORE_DEFAUT_SESSION_VARIABLES.values():
        envvar = spec[1]
        names.update([envvar] if isinstance(envvar, str) else list(envvar or []))
    return names


# ----------------------------------------------------------------------------- the schema


def test_compose_file_validates_against_the_compose_specification() -> None:
    checker = tool("check-jsonschema", "make infra-env")
    done = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_rejects_a_broken_compose_file(tmp_path: Path) -> None:
    checker = tool("check-jsonschema", "make infra-env")
    broken = tmp_path / "compose.yaml"
    broken.write_text("services:\n  api:\n    image: retain-api\n    helthcheck: {test: [CMD, 'true']}\n")
    done = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(broken)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0, "check-jsonschema accepted an unknown service key"


# ----------------------------------------------------------------------------- commands


def test_every_retain_command_exists_in_the_cli(compose: dict[str, Any], example_env: dict[str, str]) -> None:
    checked = []
    for name, svc in compose["services"].items():
        argv = command(svc, example_env)
        if not argv or argv[0] != "retain":
            continue
        try:
            resolve_cli(argv[1:])
        except UsageError as exc:
            pytest.fail(f"service {name}: `{shlex.join(argv)}` is not a valid retain command: {exc}")
        checked.append(name)
    assert {"migrate", "bootstrap", "api", "worker", "flows", "replay"} <= set(checked), checked


@pytest.mark.parametrize(
    "argv",
    [
        ["stream", "wokrer", "--source", "redis://r", "--sink", "redis://r"],  # subcommand typo
        ["stream", "worker", "--source", "redis://r", "--sink", "redis://r", "--metric-port", "9100"],
        ["stream", "worker", "--sink", "redis://r"],  # required --source missing
        ["stream", "worker", "--source", "r", "--sink", "r", "--metrics-port", "nine"],  # not an int
        ["flows"],  # a group, not a command
        ["serv"],
    ],
)
def test_the_cli_check_catches_typos(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        resolve_cli(argv)


def test_the_cli_check_accepts_real_commands() -> None:
    assert resolve_cli(["serve"]).name == "serve"
    assert resolve_cli(["flows", "serve", "--dry-run"]).name == "serve"
    assert resolve_cli(["demo", "--no-serve"]).name == "demo"


def test_stream_urls_name_the_redis_service(compose: dict[str, Any], example_env: dict[str, str]) -> None:
    services = compose["services"]
    for name in ("worker", "replay"):
        urls = [a for a in command(services[name], example_env) if "://" in a]
        assert urls, name
        for url in urls:
            parts = urlsplit(url)
            assert parts.scheme == "redis" and parts.hostname in services, (name, url)
            assert "stream=" in parts.query, (name, url)
    worker = command(services["worker"], example_env)
    assert "group=" in worker[worker.index("--source") + 1]
    source_stream = re.search(r"stream=([^&]+)", worker[worker.index("--source") + 1])
    replay = command(services["replay"], example_env)
    assert source_stream and f"stream={source_stream.group(1)}" in replay[replay.index("--to") + 1]


# ----------------------------------------------------------------------------- environment


def test_retain_variables_are_settings_fields(compose: dict[str, Any]) -> None:
    fields = set(Settings.model_fields)
    prefix = Settings.model_config.get("env_prefix", "RETAIN_")
    for name, svc in compose["services"].items():
        for key in environment(svc):
            if key.startswith(prefix):
                field = key[len(prefix) :].lower()
                assert field in fields, f"service {name}: {key} is not a setting (retain.settings.Settings)"


def test_mlflow_prefect_and_aws_variables_are_documented_names(compose: dict[str, Any]) -> None:
    known = {
        "MLFLOW_": _documented_mlflow_names(),
        "PREFECT_": _documented_prefect_names(),
        "AWS_": _documented_aws_names(),
    }
    runs = {  # the services whose processes read each family (others only pass values on)
        "MLFLOW_": {"mlflow", *retain_services(compose)},
        "PREFECT_": {"prefect-server", *retain_services(compose)},
        "AWS_": {"mlflow", *retain_services(compose)},
    }
    seen = set()
    for name, svc in compose["services"].items():
        for key in environment(svc):
            for prefix, names in known.items():
                if key.startswith(prefix) and name in runs[prefix]:
                    seen.add(prefix)
                    assert key in names, f"service {name}: {key} is not a variable {prefix[:-1]} reads"
    assert seen == set(known)


def _service_settings(svc: dict[str, Any], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key in list(os.environ):
        if key.startswith("RETAIN_") or key == "MLFLOW_TRACKING_URI":
            monkeypatch.delenv(key)
    for key, value in environment(svc).items():
        monkeypatch.setenv(key, interpolate(value, env))
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_settings_refuse_the_example_placeholders(
    compose: dict[str, Any], example_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert {"ID_HMAC_KEY", "ROSTER_ENCRYPTION_KEY"} <= set(example_env)
    for key in ("ID_HMAC_KEY", "ROSTER_ENCRYPTION_KEY"):
        assert example_env[key].lower() in PLACEHOLDER_SECRETS, key
    for name, svc in retain_services(compose).items():
        if environment(svc).get("RETAIN_ENVIRONMENT") != "production":
            continue
        with pytest.raises(ValidationError, match="refusing insecure settings"):
            _service_settings(svc, example_env, monkeypatch)
        assert name


def test_settings_accept_real_secrets_and_parse_every_value(
    compose: dict[str, Any], example_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {k: (secrets.token_urlsafe(32) if v == "changethis" else v) for k, v in example_env.items()}
    production = 0
    for name, svc in retain_services(compose).items():
        s = _service_settings(svc, env, monkeypatch)
        service_env = environment(svc)
        if service_env.get("RETAIN_ENVIRONMENT") == "production":
            production += 1
            assert s.environment == "production", name
            assert s.id_key.get_secret_value() == env["ID_HMAC_KEY"], name
            url = urlsplit(s.resolved_database_url())
            assert url.hostname == "postgres" and url.password == env["STORE_DB_PASSWORD"], name
            assert s.resolved_tracking_uri() == "http://mlflow:5000", name
        else:
            # Only the dashboard may run without production secrets, and it gets none.
            assert name == "dashboard", f"service {name} does not run with RETAIN_ENVIRONMENT=production"
            assert not {"RETAIN_ID_KEY", "RETAIN_ROSTER_KEY", "RETAIN_DATABASE_URL"} & set(service_env)
    assert production >= 6


def test_interpolated_variables_are_in_the_env_example(
    compose: dict[str, Any], example_env: dict[str, str]
) -> None:
    text = COMPOSE.read_text()
    used = dict(variables(text))
    required = {name for name, op in variables(text) if op in (":?", "?", None)}
    assert required <= set(example_env), f"compose.env.example lacks {sorted(required - set(example_env))}"
    assert set(example_env) <= set(used), (
        f"compose.env.example sets unused {sorted(set(example_env) - set(used))}"
    )
    # The .env names must not be settings themselves (the settings read .env in the working directory).
    assert not [k for k in example_env if k.startswith("RETAIN_")]


_SECRET_NAME = re.compile(r"PASSWORD|SECRET|(^|_)KEY($|_)|TOKEN|AUTH_STRING")


def test_no_secret_is_written_into_compose_yaml(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for key, value in environment(svc).items():
            if _SECRET_NAME.search(key):
                assert "${" in value, f"service {name}: {key} must come from .env, not compose.yaml"
            password = re.search(r"://[^:/@]+:(.*)@", value)
            if password:
                assert password.group(1).startswith("${"), f"service {name}: {key} has a literal password"


# ----------------------------------------------------------------------------- wiring


def test_mounted_files_and_build_files_exist(compose: dict[str, Any]) -> None:
    mounts = 0
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes") or []:
            source = volume.get("source") if isinstance(volume, dict) else str(volume).split(":")[0]
            if source.startswith((".", "/")):
                mounts += 1
                assert (REPO / source).exists(), f"service {name} mounts missing {source}"
        build = svc.get("build")
        if build:
            context = REPO / (build if isinstance(build, str) else build.get("context", "."))
            assert context.is_dir(), name
            if isinstance(build, dict) and build.get("dockerfile"):
                assert (context / build["dockerfile"]).is_file(), f"service {name}: {build['dockerfile']}"
    assert mounts >= 5


def test_healthchecks_and_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, svc in services.items():
        one_shot = svc.get("restart") == "no"
        check = svc.get("healthcheck") or {}
        if not one_shot:
            assert check.get("test") and not check.get("disable"), f"{name} needs a healthcheck"
            assert svc.get("restart") == "unless-stopped", name
        depends = svc.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for other, rule in depends.items():
            assert other in services, f"{name} depends on unknown {other}"
            condition = rule.get("condition")
            if services[other].get("restart") == "no":
                assert condition == "service_completed_successfully", (name, other)
            else:
                assert condition == "service_healthy", (name, other)
    # The long-running Retain services start after the store is migrated and the models exist.
    for name in ("api", "worker", "flows"):
        assert "bootstrap" in services[name]["depends_on"], name
    assert "migrate" in services["bootstrap"]["depends_on"]


def test_only_user_facing_ports_are_published_and_on_the_publish_address(
    compose: dict[str, Any], example_env: dict[str, str]
) -> None:
    published = set()
    for name, svc in compose["services"].items():
        for port in svc.get("ports") or []:
            published.add(name)
            assert str(port).startswith("${PUBLISH_ADDRESS:-127.0.0.1}:"), (name, port)
            assert interpolate(str(port), example_env).startswith("127.0.0.1:"), (name, port)
    assert published == PUBLISHED
    internal = compose["networks"]["backend"]
    assert internal.get("internal") is True
    for name, svc in compose["services"].items():
        networks = svc.get("networks") or []
        assert "backend" in networks, name
        assert ("edge" in networks) == (name in PUBLISHED), f"{name}: only published services join edge"


def test_images_are_built_here_or_pinned(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        image = str(svc.get("image", ""))
        if svc.get("build"):
            assert image.startswith("retain-"), name
            continue
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and re.search(r"\d", tag), f"{name}: pin {image!r}"


def test_retain_services_run_hardened(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        if not str(svc.get("image", "")).startswith("retain-"):
            continue
        assert svc.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in svc.get("security_opt", []), name


# ----------------------------------------------------------------------------- databases


def _init_script_databases() -> dict[str, str]:
    """database -> password variable, from the create_database lines of the init script."""
    script = (REPO / "deploy" / "postgres" / "init-databases.sh").read_text()
    found = re.findall(r'^create_database (\w+) "\$\{(\w+):\?', script, flags=re.M)
    return dict(found)


def test_postgres_init_script_creates_every_database_the_services_use(
    compose: dict[str, Any], example_env: dict[str, str]
) -> None:
    script = REPO / "deploy" / "postgres" / "init-databases.sh"
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert os.access(script, os.X_OK), "the init script must be executable"
    created = _init_script_databases()
    services = compose["services"]
    postgres_env = environment(services["postgres"])
    urls = {
        "api": environment(services["api"])["RETAIN_DATABASE_URL"],
        "mlflow": environment(services["mlflow"])["MLFLOW_BACKEND_STORE_URI"],
        "prefect-server": environment(services["prefect-server"])["PREFECT_API_DATABASE_CONNECTION_URL"],
    }
    tagged = {k: f"value-of-{k}" for k in example_env}  # tells which variable ends up where
    for name, raw in urls.items():
        url = urlsplit(interpolate(raw, tagged))
        database = url.path.lstrip("/")
        assert url.hostname == "postgres" and url.username == database, (name, raw)
        assert database in created, f"{name} uses database {database!r}, which the init script never creates"
        variable = created[database]
        assert url.password == f"value-of-{variable}", (
            f"{name}: the password of {database} is not ${variable}"
        )
        assert interpolate(postgres_env[variable], tagged) == f"value-of-{variable}", name
    assert set(created) == {"retain", "mlflow", "prefect"}


# ----------------------------------------------------------------------------- monitoring


def test_prometheus_config_is_valid() -> None:
    promtool = tool("promtool", "Debian package prometheus")
    done = subprocess.run(
        [str(promtool), "check", "config", str(REPO / "deploy" / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_prometheus_scrapes_the_services_where_they_serve_metrics(
    compose: dict[str, Any], example_env: dict[str, str]
) -> None:
    config = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: target
        for job in config["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    services = compose["services"]
    api_port = environment(services["api"])["RETAIN_API_PORT"]
    worker = command(services["worker"], example_env)
    worker_port = worker[worker.index("--metrics-port") + 1]
    assert targets["retain-api"] == f"api:{api_port}"
    assert targets["retain-stream-worker"] == f"worker:{worker_port}"
    assert config["rule_files"] == ["rules.yml"]
    mounts = [str(v) for v in services["prometheus"]["volumes"]]
    assert "./deploy/prometheus/rules.yml:/etc/prometheus/rules.yml:ro" in mounts
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts


def test_grafana_provisions_prometheus_and_the_dashboard(compose: dict[str, Any]) -> None:
    provisioning = REPO / "deploy" / "grafana" / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert [s["type"] for s in sources] == ["prometheus"] and sources[0]["isDefault"] is True
    url = urlsplit(sources[0]["url"])
    assert url.hostname == "prometheus" and url.hostname in compose["services"] and url.port == 9090
    providers = yaml.safe_load((provisioning / "dashboards" / "retain.yml").read_text())["providers"]
    folder = providers[0]["options"]["path"]
    grafana = compose["services"]["grafana"]
    mounts = {m.split(":")[0]: m.split(":")[1] for m in map(str, grafana["volumes"])}
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    board = mounts["./deploy/grafana/retain-overview.json"]
    assert board.rsplit("/", 1)[0] == folder, "the dashboard is not mounted into the provider's folder"
    assert environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == board
