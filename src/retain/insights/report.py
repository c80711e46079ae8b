"""The EDA report as one standalone HTML file: inline CSS, plots as base64 PNG, no external links.

Plots use matplotlib's Agg canvas directly (no pyplot state, nothing configured at import time)
and the Okabe-Ito colour-blind-safe palette, as the model cards do. The plot functions return
a ``Figure`` so the dashboard can draw the same pictures; :func:`render_html` is pure (a string
out) and :func:`write_html` is the only function here that touches the disk. The report holds
aggregates only: no student identifiers or records.
"""

from __future__ import annotations

import base64
import io
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment

from retain.insights.eda import CategoricalSummary, EdaReport, NumericSummary, Outcome
from retain.insights.stats import Comparison, format_p
from retain.palette import OKABE_ITO

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "PALETTE",
    "figure_png",
    "plot_comparison",
    "plot_histogram",
    "render_html",
    "write_html",
]

PALETTE: tuple[str, ...] = OKABE_ITO

_BLUE, _ORANGE, _GREEN, _VERMILLION, _SKY = PALETTE[:5]
_GREY = "#7f7f7f"
_LABEL_WIDTH = 44


# ----------------------------------------------------------------------------- plots


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """A figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def _short(label: str, width: int = _LABEL_WIDTH) -> str:
    """One line of at most ``width`` characters; long labels keep their start and their end
    (labels such as "... (detailed code 122)" differ only at the end)."""
    if len(label) <= width:
        return label
    tail = max(8, width // 3)
    return label[: width - tail - 1].rstrip() + "…" + label[-tail:].lstrip()


def _style(ax: Axes) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=8)


def _horizontal() -> dict[str, Any]:
    """``orientation="horizontal"`` where matplotlib has it (3.10+), else the older ``vert=False``."""
    import inspect

    from matplotlib.axes import Axes

    if "orientation" in inspect.signature(Axes.bxp).parameters:
        return {"orientation": "horizontal"}
    return {"vert": False}


def plot_histogram(summary: NumericSummary, pass_mark: float | None = None) -> Figure:
    """Histogram of a numeric column from its summary's bins, with the median (and pass mark) marked."""
    fig = _figure(4.2, 2.6)
    ax = fig.add_subplot(1, 1, 1)
    if summary.counts:
        edges = summary.edges
        widths = [b - a for a, b in itertools.pairwise(edges)]
        ax.bar(
            edges[:-1],
            summary.counts,
            width=widths,
            align="edge",
            color=_BLUE,
            edgecolor="white",
            linewidth=0.5,
        )
        ax.axvline(
            summary.median, color=_ORANGE, linestyle="--", linewidth=1.5, label=f"median {summary.median:g}"
        )
        if pass_mark is not None:
            ax.axvline(pass_mark, color=_VERMILLION, linewidth=1.5, label=f"pass mark {pass_mark:g}")
        ax.legend(fontsize=7, frameon=False)
    ax.set_title(summary.label, fontsize=9)
    ax.set_ylabel("students", fontsize=8)
    _style(ax)
    return fig


def plot_comparison(comparison: Comparison) -> Figure:
    """Groups of one comparison: boxes for a numeric outcome, rates with 95% intervals for a class.

    Numeric: boxes span the quartiles, whiskers the 5th to 95th percentiles, the diamond is the
    mean. Categorical: the focus class's rate per group with a Wilson 95% interval; the dashed
    line is the rate over all these students.
    """
    groups = comparison.groups
    k = len(groups)
    fig = _figure(6.2, 0.9 + 0.42 * k)
    ax = fig.add_subplot(1, 1, 1)
    labels = [f"{_short(g.label)} (n = {g.n})" for g in groups]
    positions = list(range(k, 0, -1))
    colour = _BLUE if comparison.significant else _GREY
    if comparison.kind == "numeric":
        boxes: list[dict[str, Any]] = [
            {
                "med": g.median,
                "q1": g.q1,
                "q3": g.q3,
                "whislo": g.p05,
                "whishi": g.p95,
                "mean": g.mean,
                "fliers": [],
                "label": label,
            }
            for g, label in zip(groups, labels, strict=True)
        ]
        style: dict[str, Any] = {
            "positions": positions,
            "showmeans": True,
            "showfliers": False,
            "patch_artist": True,
            "widths": 0.6,
            "boxprops": {"facecolor": _SKY if comparison.significant else "#d9d9d9", "edgecolor": colour},
            "medianprops": {"color": _ORANGE if comparison.significant else "#404040", "linewidth": 2},
            "meanprops": {
                "marker": "D",
                "markerfacecolor": "black",
                "markeredgecolor": "black",
                "markersize": 4,
            },
            "whiskerprops": {"color": colour},
            "capprops": {"color": colour},
        }
        ax.bxp(boxes, **style, **_horizontal())
        ax.set_xlabel(comparison.outcome_label, fontsize=8)
    else:
        rates = [100 * (g.rate or 0.0) for g in groups]
        low = [max(0.0, 100 * ((g.rate or 0.0) - (g.rate_ci_low or 0.0))) for g in groups]
        high = [max(0.0, 100 * ((g.rate_ci_high or 0.0) - (g.rate or 0.0))) for g in groups]
        ax.barh(positions, rates, height=0.6, color=colour, xerr=[low, high], ecolor="black", capsize=3)
        total = sum(g.n for g in groups)
        overall = 100 * sum((g.rate or 0.0) * g.n for g in groups) / total if total else math.nan
        ax.axvline(overall, color=_ORANGE, linestyle="--", linewidth=1.5, label=f"all: {overall:.1f}%")
        ax.legend(fontsize=7, frameon=False, loc="lower right")
        ax.set_yticks(positions, labels)
        ax.set_xlabel(f"{comparison.focus} rate (%)", fontsize=8)
        ax.set_xlim(0, min(100.0, max(r + h for r, h in zip(rates, high, strict=True)) * 1.1 + 1))
    ax.set_title(_title(comparison), fontsize=9)
    _style(ax)
    return fig


def _title(c: Comparison) -> str:
    group = c.group_label[0].lower() + c.group_label[1:] if c.group_label[1:2].islower() else c.group_label
    what = f"{c.focus} rate" if c.kind == "categorical" and c.focus else c.outcome_label
    return f"{what} by {group}"


def _class_bars(summary: CategoricalSummary) -> Figure:
    fig = _figure(4.2, 0.8 + 0.32 * len(summary.levels))
    ax = fig.add_subplot(1, 1, 1)
    positions = list(range(len(summary.levels), 0, -1))
    ax.barh(positions, [lv.n for lv in summary.levels], height=0.6, color=_BLUE)
    ax.set_yticks(positions, [_short(lv.label) for lv in summary.levels])
    ax.set_xlabel("students", fontsize=8)
    ax.set_title(summary.label, fontsize=9)
    _style(ax)
    return fig


def _png64(fig: Figure) -> str:
    return base64.b64encode(figure_png(fig)).decode("ascii")


# ----------------------------------------------------------------------------- view models


def _num(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _df(values: Sequence[float]) -> str:
    return ", ".join(f"{d:.0f}" if float(d).is_integer() else f"{d:.1f}" for d in values)


def _statistic(c: Comparison) -> str:
    df = f" (df {_df(c.df)})" if c.df else ""
    return f"{c.statistic_name} = {c.statistic:.2f}{df}"


def _effect(c: Comparison) -> str:
    e = c.effect
    ci = f" [{e.ci_low:.2f}, {e.ci_high:.2f}]" if e.ci_low is not None and e.ci_high is not None else ""
    return f"{e.name} = {e.value:.2f}{ci}"


def _p(p: float | None) -> str:
    if p is None:
        return "–"
    text = format_p(p)
    return text[2:] if text.startswith("= ") else text


@dataclass(frozen=True)
class _Row:
    outcome: str
    group: str
    test: str
    statistic: str
    p: str
    p_adjusted: str
    effect: str
    magnitude: str
    n: int
    significant: bool
    sentence: str


@dataclass(frozen=True)
class _Card:
    title: str
    sentence: str
    image: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    reason: str
    details: str
    significant: bool


def _row(c: Comparison) -> _Row:
    return _Row(
        outcome=c.outcome_label,
        group=c.group_label,
        test=c.test,
        statistic=_statistic(c),
        p=_p(c.p_value),
        p_adjusted=_p(c.p_adjusted),
        effect=_effect(c),
        magnitude=c.effect.magnitude,
        n=c.n,
        significant=bool(c.significant),
        sentence=c.sentence,
    )


def _group_rows(c: Comparison) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    if c.kind == "numeric":
        has_below = any(g.below is not None for g in c.groups)
        headers: tuple[str, ...] = ("group", "students", "mean [95% CI]", "sd", "median", "quartiles")
        if has_below:
            headers += ("below pass mark",)
        rows = []
        for g in c.groups:
            row: tuple[str, ...] = (
                g.label,
                str(g.n),
                f"{_num(g.mean, 1)} [{_num(g.mean_ci_low, 1)}, {_num(g.mean_ci_high, 1)}]",
                _num(g.sd, 1),
                _num(g.median, 1),
                f"{_num(g.q1, 1)} – {_num(g.q3, 1)}",
            )
            if has_below:
                row += (_pct(g.below),)
            rows.append(row)
        return headers, tuple(rows)
    classes = list(c.groups[0].shares) if c.groups else []
    headers = (
        "group",
        "students",
        f"{c.focus} rate [95% CI]",
        *(f"{k} share" for k in classes if k != c.focus),
    )
    rows = [
        (
            g.label,
            str(g.n),
            f"{_pct(g.rate)} [{_pct(g.rate_ci_low)}, {_pct(g.rate_ci_high)}]",
            *(_pct(g.shares.get(k)) for k in classes if k != c.focus),
        )
        for g in c.groups
    ]
    return headers, tuple(rows)


def _details(c: Comparison) -> str:
    parts = []
    if c.difference is not None and c.difference_ci is not None and len(c.groups) == 2:
        a, b = c.groups
        if c.kind == "numeric":
            parts.append(
                f"Difference in means, “{a.label}” minus “{b.label}”: {c.difference:.2f} "
                f"[95% CI {c.difference_ci[0]:.2f}, {c.difference_ci[1]:.2f}]."
            )
        else:
            parts.append(
                f"Difference in {c.focus} rate, “{a.label}” minus “{b.label}”: {100 * c.difference:.1f} "
                f"percentage points [95% CI {100 * c.difference_ci[0]:.1f}, {100 * c.difference_ci[1]:.1f}]."
            )
    if c.pooled:
        parts.append(f"Pooled into “Other” (each under the minimum group size): {', '.join(c.pooled)}.")
    if c.excluded:
        parts.append(f"Left out (too few students even pooled): {', '.join(c.excluded)}.")
    if c.note:
        parts.append(c.note[0].upper() + c.note[1:] + ".")
    return " ".join(parts)


def _card(c: Comparison) -> _Card:
    headers, rows = _group_rows(c)
    return _Card(
        title=_title(c),
        sentence=c.sentence,
        image=_png64(plot_comparison(c)),
        headers=headers,
        rows=rows,
        reason=f"Why the {c.test}: {c.reason}.",
        details=_details(c),
        significant=bool(c.significant),
    )


@dataclass(frozen=True)
class _Figure:
    title: str
    image: str


def _outcome_figure(outcome: Outcome, report: EdaReport) -> _Figure | None:
    for s in report.numeric:
        if s.column == outcome.column:
            return _Figure(s.label, _png64(plot_histogram(s, outcome.pass_mark)))
    for cs in report.categorical:
        if cs.column == outcome.column:
            return _Figure(cs.label, _png64(_class_bars(cs)))
    return None


def _numeric_rows(summaries: Sequence[NumericSummary]) -> list[tuple[str, ...]]:
    return [
        (
            s.label,
            str(s.n),
            str(s.missing),
            _num(s.mean),
            _num(s.sd),
            _num(s.min, 1),
            _num(s.q1, 1),
            _num(s.median, 1),
            _num(s.q3, 1),
            _num(s.max, 1),
            _num(s.skewness),
        )
        for s in summaries
    ]


# ----------------------------------------------------------------------------- HTML

_TEMPLATE = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Insights: {{ report.title }}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 72rem; margin: 2rem auto;
       padding: 0 1rem; color: #1a1a1a; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 2px solid #0072B2; padding-bottom: 0.2rem; margin-top: 2.2rem; }
h3 { margin: 0.2rem 0; font-size: 1.02rem; }
.meta { color: #555; font-size: 0.9rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.sig td:first-child { border-left: 4px solid #0072B2; }
.note { border-left: 4px solid #0072B2; background: #eef5fb; padding: 0.6rem 1rem; }
.protected { border-left: 4px solid #CC79A7; background: #f8eef4; padding: 0.6rem 1rem; }
.findings li { margin: 0.3rem 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.7rem 1rem; margin: 0.8rem 0; }
.card.sig { border-left: 5px solid #0072B2; } .card.ns { border-left: 5px solid #bbb; }
.card img { max-width: 100%; }
.small { font-size: 0.82rem; color: #444; }
.grid { display: flex; flex-wrap: wrap; gap: 0.6rem; }
figure { margin: 0; } figure img { width: 26rem; max-width: 100%; }
.bar { background: #0072B2; height: 0.7rem; display: inline-block; vertical-align: middle; }
.levels { display: inline-block; vertical-align: top; margin-right: 1.2rem; }
details summary { cursor: pointer; color: #0072B2; }
</style>
</head>
<body>
{% macro comparison_table(rows) -%}
<table>
<thead><tr><th>Outcome</th><th>Group</th><th>Test</th><th>Statistic</th><th>p</th><th>Adjusted p</th>
<th>Effect size [95% CI]</th><th>Magnitude</th><th>Students</th><th>In words</th></tr></thead>
<tbody>
{% for r in rows %}<tr class="{{ 'sig' if r.significant else 'ns' }}"><td>{{ r.outcome }}</td><td>{{ r.group }}</td>
<td>{{ r.test }}</td><td class="num">{{ r.statistic }}</td><td class="num">{{ r.p }}</td>
<td class="num">{{ r.p_adjusted }}</td><td class="num">{{ r.effect }}</td><td>{{ r.magnitude }}</td>
<td class="num">{{ r.n }}</td><td>{{ r.sentence }}</td></tr>
{% endfor %}</tbody>
</table>
{%- endmacro %}
{% macro cards(items) -%}
{% for c in items %}<div class="card {{ 'sig' if c.significant else 'ns' }}">
<h3>{{ c.title }}</h3>
<p>{{ c.sentence }}</p>
<img alt="{{ c.title }}" src="data:image/png;base64,{{ c.image }}">
<details><summary>Groups and method</summary>
<table><thead><tr>{% for h in c.headers %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in c.rows %}<tr>{% for v in row %}<td{% if not loop.first %} class="num"{% endif %}>{{ v }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table>
<p class="small">{{ c.reason }} {{ c.details }}</p>
</details>
</div>
{% endfor %}
{%- endmacro %}
<h1>Insights: {{ report.title }}</h1>
<p class="meta">Dataset <strong>{{ report.dataset }}</strong>, {{ report.n_rows }} students{% if source %}, from {{ source }}{% endif %}.
Generated {{ created }}.</p>
<p class="note">Group comparisons describe these students; they do not show that a group difference is caused by
the grouping. Every p-value is adjusted for the {{ n_comparisons }} comparisons of this report ({{ correction }});
a finding is called significant when its adjusted p is below {{ alpha }}. Effect sizes say how large a difference
is, which matters more than its p-value in large files.</p>
{% for n in report.notes %}<p class="small">{{ n }}</p>{% endfor %}

<h2>Key findings</h2>
{% if findings %}<ol class="findings">{% for s in findings %}<li>{{ s }}</li>{% endfor %}</ol>
{% else %}<p>No comparison by a non-protected attribute is significant after the correction.</p>{% endif %}

<h2>Outcomes</h2>
<div class="grid">{% for f in outcome_figures %}<figure><img alt="{{ f.title }}" src="data:image/png;base64,{{ f.image }}"></figure>{% endfor %}</div>

<h2>Comparisons</h2>
{% if general_rows %}{{ comparison_table(general_rows) }}
{{ cards(general_cards) }}{% else %}<p>No comparisons by non-protected attributes.</p>{% endif %}

<h2>Protected attributes</h2>
<p class="protected">These attributes are audited for fairness. Differences by them describe the data a model
learns from; they are context for educators and for the fairness audit, not levers for action, and never a
reason to treat a student differently.</p>
{% if protected_findings %}<ol class="findings">{% for s in protected_findings %}<li>{{ s }}</li>{% endfor %}</ol>{% endif %}
{% if protected_rows %}{{ comparison_table(protected_rows) }}
{{ cards(protected_cards) }}{% else %}<p>No comparisons by protected attributes.</p>{% endif %}

<h2>Distributions</h2>
{% if numeric_rows %}<h3>Numeric columns</h3>
<table><thead><tr><th>Column</th><th>Students</th><th>Missing</th><th>Mean</th><th>SD</th><th>Min</th><th>Q1</th>
<th>Median</th><th>Q3</th><th>Max</th><th>Skewness</th></tr></thead>
<tbody>{% for row in numeric_rows %}<tr>{% for v in row %}<td{% if not loop.first %} class="num"{% endif %}>{{ v }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table>
<div class="grid">{% for f in histograms %}<figure><img alt="{{ f.title }}" src="data:image/png;base64,{{ f.image }}"></figure>{% endfor %}</div>{% endif %}
{% if categorical %}<h3>Categorical columns</h3>
{% for s in categorical %}<div class="levels"><table><thead><tr><th colspan="3">{{ s.label }}{% if s.protected %} (protected){% endif %}
{% if s.missing %} · {{ s.missing }} missing{% endif %}</th></tr></thead>
<tbody>{% for lv in s.levels %}<tr><td>{{ lv.label }}</td><td class="num">{{ lv.n }}</td>
<td><span class="bar" style="width: {{ '%.1f' | format(lv.share * 8) }}rem"></span> {{ '%.1f' | format(lv.share * 100) }}%</td></tr>
{% endfor %}</tbody></table></div>
{% endfor %}{% endif %}

{% if skipped %}<h2>Comparisons not run</h2>
<table><thead><tr><th>Outcome</th><th>Group</th><th>Why</th></tr></thead>
<tbody>{% for s in skipped %}<tr><td>{{ s.outcome_label or s.outcome }}</td><td>{{ s.group_label or s.group_by }}</td><td>{{ s.reason }}</td></tr>
{% endfor %}</tbody></table>{% endif %}

<h2>Method</h2>
<ul class="small">
<li>Outcomes are the tasks' targets. A numeric outcome is compared as a number; a class outcome as the rate of
the adverse class ({{ focus_list }}).</li>
<li>Numeric outcome, two groups: Welch's t-test, Hedges' g with a 95% interval and the difference in means
(in the tables both are the first group listed minus the second; the sentence gives the direction in words).
More groups: Welch's ANOVA (ω²) when every group has at least {{ report.options.clt_min }} students and the
within-group values are not strongly skewed (|skewness| ≤ {{ report.options.max_skew }}); otherwise the
Kruskal-Wallis test (ε²), which compares ranks and reports medians.</li>
<li>Class outcome: chi-square test of independence (no continuity correction) and Cramér's V; Fisher's exact
test for a 2 × 2 table with an expected count below 5. Rates carry Wilson 95% intervals.</li>
<li>Groups with fewer than {{ report.options.min_group_size }} students are pooled into “Other”, or left out when
the pooled group is still smaller; columns with more than {{ report.options.max_levels }} groups after that are
not compared.</li>
<li>{{ correction_text }}</li>
<li>Magnitudes: g 0.2 / 0.5 / 0.8 (small / medium / large); ω², ε² 0.01 / 0.06 / 0.14; Cramér's V 0.1 / 0.3 / 0.5
divided by √(min(rows, columns) − 1).</li>
</ul>
</body>
</html>
"""

_CORRECTION_TEXT = {
    "holm": (
        "Holm's step-down correction over all comparisons of the report: it controls the chance of any false "
        "finding whatever the dependence between tests (they share the same students)."
    ),
    "bh": (
        "Benjamini-Hochberg correction over all comparisons of the report: it controls the expected share of "
        "false findings among those reported."
    ),
}


def render_html(report: EdaReport, *, created: str | None = None) -> str:
    """The report as one standalone HTML page (inline CSS, base64 PNG plots, no external resources).

    Parameters
    ----------
    report : EdaReport
        From :func:`retain.insights.eda.build_eda`.
    created : str, optional
        Timestamp to print (default: now, UTC).
    """
    outcome_columns = {o.column for o in report.outcomes}
    figures = [f for f in (_outcome_figure(o, report) for o in report.outcomes) if f is not None]
    histograms = [
        _Figure(s.label, _png64(plot_histogram(s)))
        for s in report.numeric
        if s.column not in outcome_columns and s.n > 0
    ]
    focus = sorted({f"{o.label}: {o.focus}" for o in report.outcomes if o.kind == "categorical" and o.focus})
    env = Environment(autoescape=True, trim_blocks=False)
    template = env.from_string(_TEMPLATE)
    return template.render(
        report=report,
        source=report.source,
        created=created or datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        n_comparisons=len(report.comparisons),
        correction="Holm" if report.options.correction == "holm" else "Benjamini-Hochberg",
        correction_text=_CORRECTION_TEXT[report.options.correction],
        alpha=report.options.alpha,
        findings=[c.sentence for c in report.findings(False)],
        protected_findings=[c.sentence for c in report.findings(True)],
        outcome_figures=figures,
        general_rows=[_row(c) for c in report.general],
        general_cards=[_card(c) for c in report.general],
        protected_rows=[_row(c) for c in report.protected],
        protected_cards=[_card(c) for c in report.protected],
        numeric_rows=_numeric_rows([s for s in report.numeric if s.n > 0]),
        histograms=histograms,
        categorical=[s for s in report.categorical if s.column not in outcome_columns],
        skipped=report.skipped,
        focus_list="; ".join(focus) if focus else "none here",
    )


def write_html(report: EdaReport, path: Path, *, created: str | None = None) -> Path:
    """Write :func:`render_html` to ``path`` (parent folders created); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report, created=created), encoding="utf-8")
    return path
