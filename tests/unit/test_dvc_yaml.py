"""The pipeline in dvc.yaml against the code, without DVC or a network.

Every command a stage runs is a real ``retain`` command whose options parse (click's own parser,
from ``retain.cli.app``), every dependency is in the repo or made by an earlier stage, every file a
command writes is a declared output, every parameter it uses is declared and defined in
params.yaml, and every ``RETAIN_*`` variable it sets is a real setting. ``dvc repro`` itself runs in
``tests/integration/test_dvc_pipeline.py``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import typer.main
import yaml

from retain.cli import app
from retain.data.spec import load_spec
from retain.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
DVC_YAML = REPO_ROOT / "dvc.yaml"
PARAMS_YAML = REPO_ROOT / "params.yaml"
DVCIGNORE = REPO_ROOT / ".dvcignore"
RETAIN = ".venv/bin/retain"
#: DVC deletes a stage's outputs before running it again: they must only ever be pipeline state.
OUTPUT_ROOT = PurePosixPath(".retain/pipeline")
STAGES = ("prepare", "train", "evaluate")

_REF = re.compile(r"\$\{\s*([^}]*?)\s*\}")
_LOOP = re.compile(r"^\s*for (\w+) in ([^;]*);\s*do\s+(.*?);?\s*done\s*$", re.DOTALL)
_OPERATORS = {";", "&&", "||", "|", "&", ">", ">>", "<", "(", ")"}
_ENV = re.compile(r"^(RETAIN_[A-Z0-9_]+)=")


@dataclass
class Invocation:
    """One ``retain`` call of a stage: its arguments and what the shell around it sets and writes."""

    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    writes: list[str] = field(default_factory=list)


@dataclass
class Stage:
    name: str
    commands: list[str]
    deps: list[str]
    outs: list[str]
    params: list[str]
    refs: set[str]


def _yaml(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict), f"{path.name} is not a mapping"
    return loaded


def _params() -> dict[str, Any]:
    return _yaml(PARAMS_YAML)


def _variables() -> dict[str, Any]:
    """What ``${...}`` can name: params.yaml, then dvc.yaml's own ``vars`` (DVC refuses clashes)."""
    context = dict(_params())
    for entry in _yaml(DVC_YAML).get("vars", []):
        assert isinstance(entry, dict), f"vars entry {entry!r}: only inline values are expected"
        clash = set(entry) & set(context)
        assert not clash, f"vars {sorted(clash)} also defined in params.yaml"
        context.update(entry)
    return context


def _lookup(context: dict[str, Any], dotted: str) -> object:
    value: object = context
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            pytest.fail(f"${{{dotted}}}: {part!r} is not defined in params.yaml or dvc.yaml vars")
        value = value[part]
    return value


def _resolve(text: str, context: dict[str, Any], refs: set[str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        value = _lookup(context, name)
        # DVC interpolates only scalars into strings (a list is refused, a dict unpacked as flags)
        assert isinstance(value, str | int | float) and not isinstance(value, bool), (
            f"${{{name}}} is {type(value).__name__}; only scalars are interpolated here"
        )
        refs.add(name)
        return str(value)

    return _REF.sub(substitute, text)


def _entry_path(entry: object) -> str:
    """An ``outs``/``metrics``/``deps`` entry: a path, or a one-key mapping of path to options."""
    if isinstance(entry, dict):
        assert len(entry) == 1, entry
        return str(next(iter(entry)))
    return str(entry)


def _stages() -> dict[str, Stage]:
    context = _variables()
    raw = _yaml(DVC_YAML)["stages"]
    assert isinstance(raw, dict)
    stages: dict[str, Stage] = {}
    for name, body in raw.items():
        assert isinstance(body, dict) and "foreach" not in body and "matrix" not in body, name
        refs: set[str] = set()
        cmd = body["cmd"]
        commands = [cmd] if isinstance(cmd, str) else list(cmd)
        stages[name] = Stage(
            name=name,
            commands=[_resolve(c, context, refs) for c in commands],
            deps=[_resolve(_entry_path(d), context, refs) for d in body.get("deps", [])],
            outs=[
                _resolve(_entry_path(o), context, refs)
                for o in [*body.get("outs", []), *body.get("metrics", [])]
            ],
            params=[str(p) for p in body.get("params", [])],
            refs=refs,
        )
    return stages


def _expand_loops(command: str) -> list[str]:
    """``for s in a b; do X $s; done`` -> ``X a``, ``X b`` (the only shell loop the stages use)."""
    loop = _LOOP.match(command)
    if loop is None:
        return [command]
    var, values, body = loop.groups()
    assert values.split(), f"empty loop in {command!r}"
    return [re.sub(rf"\${var}\b", value, body) for value in values.split()]


def _invocations(command: str) -> list[Invocation]:
    found: list[Invocation] = []
    for line in _expand_loops(command):
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        tokens = list(lexer)
        current: Invocation | None = None
        env: dict[str, str] = {}
        for i, token in enumerate(tokens):
            if current is not None:
                if token in _OPERATORS:
                    if token in (">", ">>") and i + 1 < len(tokens):
                        current.writes.append(tokens[i + 1])
                    found.append(current)
                    current = None
                else:
                    current.args.append(token)
                continue
            if token in _OPERATORS:
                env = {}
            elif match := _ENV.match(token):
                env[match.group(1)] = token.split("=", 1)[1]
            elif token == RETAIN:
                current = Invocation(args=[], env=env)
        if current is not None:
            found.append(current)
    return found


def _parse(args: list[str]) -> tuple[str, dict[str, object]]:
    """Parse ARGS with the CLI's own click command; fail with click's message if it refuses them."""
    command = typer.main.get_command(app)
    path = ["retain"]
    rest = list(args)
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        sub = command.commands.get(name)
        assert sub is not None, f"`{' '.join(path)}` has no command {name!r}"
        command, path = sub, [*path, name]
    assert not hasattr(command, "commands"), f"`{' '.join(path)}` is a group, not a command"
    try:
        ctx = command.make_context(" ".join(path), rest)
    except Exception as exc:  # click's UsageError / BadParameter (typer may vendor click)
        pytest.fail(f"`{' '.join(path)} {shlex.join(rest)}` does not parse: {exc}")
    return " ".join(path[1:]), dict(ctx.params)


def _is_within(path: str, roots: list[str]) -> bool:
    p = PurePosixPath(path)
    return any(p == PurePosixPath(r) or p.is_relative_to(r) for r in roots)


def test_stages_are_prepare_train_evaluate() -> None:
    assert tuple(_stages()) == STAGES


def test_every_command_is_a_real_retain_command_whose_options_parse() -> None:
    seen: set[str] = set()
    for stage in _stages().values():
        calls = [call for command in stage.commands for call in _invocations(command)]
        assert calls, f"stage {stage.name} runs no retain command"
        for call in calls:
            name, _ = _parse(call.args)
            seen.add(name)
    assert {"data synth", "data validate", "train", "evaluate"} <= seen


def test_dataset_task_and_stages_exist_in_the_spec() -> None:
    params = _params()
    spec = load_spec(str(params["dataset"]))
    task = spec.task(str(params["task"]))
    stages = str(params["stages"]).split()
    assert stages and set(stages) <= set(task.stages), f"{stages} not all stages of {task.stages}"
    for stage, command_name in (("train", "train"), ("evaluate", "evaluate")):
        calls = [_parse(call.args) for c in _stages()[stage].commands for call in _invocations(c)]
        done = [options["stage"] for name, options in calls if name == command_name]
        assert done == stages, f"{stage} runs `retain {command_name}` for {done}, params say {stages}"
        for _, options in calls:
            assert options.get("dataset", params["dataset"]) == params["dataset"]
            assert options.get("task", params["task"]) == params["task"]


def test_every_dependency_is_in_the_repo_or_made_by_an_earlier_stage() -> None:
    made: list[str] = []
    for stage in _stages().values():
        for dep in stage.deps:
            assert not PurePosixPath(dep).is_absolute(), f"{stage.name}: absolute dependency {dep}"
            assert (REPO_ROOT / dep).exists() or _is_within(dep, made), (
                f"{stage.name}: dependency {dep} is neither in the repo nor an output of an earlier stage"
            )
        made.extend(stage.outs)


def test_outputs_are_only_pipeline_state_and_never_overlap() -> None:
    outs = [(stage.name, out) for stage in _stages().values() for out in stage.outs]
    for name, out in outs:
        assert PurePosixPath(out).is_relative_to(OUTPUT_ROOT), (
            f"{name}: output {out} outside {OUTPUT_ROOT} (DVC deletes outputs before a rerun)"
        )
    paths = [out for _, out in outs]
    for i, a in enumerate(paths):
        for b in paths[i + 1 :]:
            assert not _is_within(a, [b]) and not _is_within(b, [a]), f"outputs {a} and {b} overlap"
    assert ".retain/" in (REPO_ROOT / ".gitignore").read_text().split()


def test_what_commands_read_is_a_dependency_and_what_they_write_an_output() -> None:
    for stage in _stages().values():
        for command in stage.commands:
            for call in _invocations(command):
                name, options = _parse(call.args)
                for target in call.writes:
                    assert _is_within(target, stage.outs), f"{stage.name}: writes {target}, not an output"
                if name == "data synth":
                    assert _is_within(str(options["output"]), stage.outs), f"{stage.name}: {options}"
                if name in ("train", "evaluate", "data validate"):
                    read = options["data"] if name != "data validate" else options["file"]
                    assert read is not None and _is_within(str(read), stage.deps), (
                        f"{stage.name}: `retain {name}` reads {read}, which is not a dependency"
                    )
                if name == "evaluate":
                    mlflow = f"{call.env['RETAIN_HOME']}/mlflow"
                    assert mlflow in stage.deps, f"evaluate must depend on the registry {mlflow}"


def test_every_parameter_used_is_declared_defined_and_every_defined_one_used() -> None:
    params = _params()
    vars_names = set(_variables()) - set(params)
    used: set[str] = set()
    for stage in _stages().values():
        for declared in stage.params:
            _lookup(params, declared)  # defined in params.yaml
        for ref in stage.refs:
            if ref.split(".")[0] in vars_names:
                continue
            assert any(ref == p or ref.startswith(f"{p}.") for p in stage.params), (
                f"{stage.name}: uses ${{{ref}}} but does not list it under params"
            )
            used.add(ref)

    def leaves(tree: dict[str, Any], prefix: str = "") -> list[str]:
        out: list[str] = []
        for key, value in tree.items():
            name = f"{prefix}{key}"
            out.extend(leaves(value, f"{name}.") if isinstance(value, dict) else [name])
        return out

    unused = [leaf for leaf in leaves(params) if leaf not in used]
    assert not unused, f"params.yaml defines {unused} but no stage uses them"


def test_environment_variables_set_by_the_stages_are_real_settings() -> None:
    fields = set(Settings.model_fields)
    seen: set[str] = set()
    for stage in _stages().values():
        for command in stage.commands:
            for call in _invocations(command):
                for variable in call.env:
                    assert variable.removeprefix("RETAIN_").lower() in fields, variable
                    seen.add(variable)
                if call.args[0] in ("train", "evaluate"):
                    assert call.env.get("RETAIN_HOME") == str(OUTPUT_ROOT), call.args
    assert {"RETAIN_HOME", "RETAIN_SEED", "RETAIN_CV_FOLDS", "RETAIN_BOOTSTRAP_ROUNDS"} <= seen


def test_training_ignores_an_outside_tracking_server() -> None:
    """The registry is the train stage's output: a tracking URI from the shell must not redirect it."""
    for name in ("train", "evaluate"):
        joined = " ".join(_stages()[name].commands)
        for variable in ("MLFLOW_TRACKING_URI", "RETAIN_TRACKING_URI", "RETAIN_REGISTRY_URI"):
            assert f"-u {variable}" in joined, f"{name} does not unset {variable}"


def test_dvcignore_keeps_bytecode_and_mlflow_load_markers_out_of_hashes() -> None:
    patterns = [
        line.strip() for line in DVCIGNORE.read_text().splitlines() if line.strip() and line[0] != "#"
    ]
    assert {"__pycache__/", "*.pyc", "registered_model_meta"} <= set(patterns)
