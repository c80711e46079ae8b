"""``retain report``: a thin Typer sub-app that loads a dataset, builds the insights and writes HTML.

Mounted by ``retain.cli`` as ``app.add_typer(report_app, name="report")``. With ``--json`` only
one JSON object goes to stdout; progress and warnings go to stderr. Bad input (an unknown
dataset, a missing file, a file without the targets) ends with a readable message and exit
code 2.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from retain.console import clean as _clean
from retain.console import fail as _fail
from retain.console import say as _say

__all__ = ["report_app"]

report_app = typer.Typer(help="Reports: standalone HTML insight reports for educators.", no_args_is_help=True)


@report_app.callback()
def _reports() -> None:
    """Reports: standalone HTML insight reports for educators."""
    # A callback keeps ``report`` a group (``retain report eda ...``) while it has one command.


@report_app.command("eda")
def eda(
    dataset: Annotated[str, typer.Option(help="Dataset name (see `retain data list`).")],
    data: Annotated[
        Path | None,
        typer.Option(help="CSV or Parquet file (default: the dataset's file in the data folder)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(help="HTML file to write (default: RETAIN_HOME/reports/eda-{dataset}.html)."),
    ] = None,
    min_group_size: Annotated[
        int, typer.Option(min=2, help="Smaller groups are pooled into 'Other' or left out.")
    ] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the insights as JSON on stdout.")] = False,
) -> None:
    """Distributions, outcome rates by group and corrected group comparisons, as one HTML file."""
    from retain.data.load import DataError, dataset_path, load_raw
    from retain.data.spec import SpecError, load_spec
    from retain.data.validate import validate_frame
    from retain.insights.eda import EdaOptions, build_eda
    from retain.insights.report import write_html
    from retain.settings import get_settings

    started = time.perf_counter()
    try:
        spec = load_spec(dataset)
    except (SpecError, LookupError, FileNotFoundError) as exc:
        _fail(str(exc))
    path = data or dataset_path(spec)
    if not path.exists():
        if data is not None:
            _fail(f"no such file: {path}")
        _fail(
            f"no data file for dataset {spec.name!r} at {path}. Pass --data FILE, set RETAIN_DATA_DIR, "
            f"or create synthetic students with `retain data synth {spec.name}`."
        )
    _say(f"reading {path}", started)
    try:
        raw = load_raw(spec, path if data is not None else None)
    except (DataError, ValueError, OSError) as exc:
        _fail(f"cannot read {path}: {exc}")
    present = [c.name for c in spec.columns if c.name in raw.columns]
    targets = sorted({t.target for t in spec.tasks})
    if not any(t in raw.columns for t in targets):
        headers = ", ".join(repr(spec.column(t).header) for t in targets)
        _fail(f"{path} has none of the dataset's outcome columns ({headers}): nothing to compare")
    typed, validation = validate_frame(raw, spec, required=present)
    notes = []
    if not validation.ok:
        bad = sum(i.n_rows for i in validation.errors)
        notes.append(f"{bad} value(s) did not match the spec and are treated as missing.")
        _say(
            f"warning: {len(validation.errors)} validation problem(s); bad values treated as missing", started
        )
    missing = [c.display for c in spec.columns if c.name not in raw.columns and c.role != "id"]
    if missing:
        notes.append(f"Columns not in the file: {', '.join(missing)}.")
    _say(f"{len(typed)} students; comparing groups", started)
    report = build_eda(typed, spec, EdaOptions(min_group_size=min_group_size), source=path.name, notes=notes)
    target = output or get_settings().home / "reports" / f"eda-{spec.name}.html"
    _say(f"{len(report.comparisons)} comparisons; writing {target}", started)
    write_html(report, target)
    _say("done", started)
    if as_json:
        payload = {**report.to_dict(), "html": str(target)}
        sys.stdout.write(json.dumps(_clean(payload), indent=2) + "\n")
        return
    significant = report.findings(None)
    sys.stdout.write(
        f"{spec.title}: {len(report.comparisons)} comparisons, {len(significant)} significant after "
        f"{'Holm' if report.options.correction == 'holm' else 'Benjamini-Hochberg'} correction\n"
    )
    for c in significant[:10]:
        sys.stdout.write(f"  - {c.sentence}\n")
    sys.stdout.write(f"report: {target}\n")
