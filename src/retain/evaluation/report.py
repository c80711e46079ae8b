"""Model cards: a Markdown and a self-contained HTML page with evaluation plots.

This is the only evaluation module that writes files. Plots use matplotlib's Agg canvas
directly (no pyplot state, nothing configured at import time) and the Okabe-Ito colour-blind-safe
palette. Cards hold aggregates only: no student identifiers or records are written.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from jinja2 import Environment
from sklearn.metrics import precision_recall_curve, roc_curve

from retain.evaluation.metrics import confusion
from retain.palette import OKABE_ITO

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "OKABE_ITO",
    "RESPONSIBLE_USE",
    "ModelCard",
    "render_model_card",
]


RESPONSIBLE_USE = (
    "Predictions support advisors in deciding whom to contact and how to help; they are never the "
    "sole basis for a decision about a student. A risk score is an estimate from past cohorts, can "
    "be wrong for an individual, and must be read together with what advisors know about the student."
)
"""Fixed responsible-use note printed on every model card."""

DEFAULT_INTENDED_USE = (
    "Early warning: rank students by the risk of the adverse outcome so that advisors can offer "
    "support early. Not for admission, grading, sanctions or any automated decision."
)

MetricValue = float | Mapping[str, float]


@dataclass
class ModelCard:
    """Everything a model card shows.

    Attributes
    ----------
    model_name : str
        Registered model name, e.g. ``dropout.outcome.enrolment``.
    dataset_title : str
        Readable dataset title.
    task_name, task_description : str
        The task and what it predicts.
    task_type : {"classification", "regression"}
        The task type.
    stage : str
        The stage whose features the model uses.
    features : list of str
        Readable names of the features used.
    protected_attributes : dict of str to bool
        Readable protected attribute name -> whether it is used as a feature.
    data_version, git_commit : str
        Content hash of the data and the code commit.
    seed : int
        Random seed of the training run.
    training_rows, evaluation_rows : int
        Row counts.
    evaluation_method : str
        How the evaluation rows were held out (e.g. "stratified 20% hold-out").
    metrics : mapping
        Metric name -> value, or -> ``{"value", "low", "high"}`` with a confidence interval.
    labels : list of str
        Class names in index order (classification).
    y_true : ndarray, optional
        Class indices (classification) or values (regression) of the evaluation rows.
    proba : ndarray of shape (n, k), optional
        Class probabilities (classification).
    y_pred : ndarray, optional
        Predicted values (regression) or class indices (classification without ``proba``).
    baselines : dict
        Model name -> metrics dict, for comparison.
    thresholds : str
        Decision thresholds and risk bands, in words.
    fairness : DataFrame, optional
        :func:`retain.evaluation.fairness.group_metrics` output.
    fairness_gaps : DataFrame, optional
        :func:`retain.evaluation.fairness.fairness_gaps` output.
    importance : DataFrame, optional
        Columns ``feature`` and ``importance`` (e.g. mean |SHAP| or permutation importance).
    importance_method : str
        How importance was measured.
    feature_labels : dict of str to str
        Canonical feature name -> readable label, applied to the importance table.
    intended_use, limitations : str
        Free text.
    ci_level : float
        Coverage of the confidence intervals in ``metrics``.
    created_at : str, optional
        Timestamp shown on the card; default now (UTC).
    """

    model_name: str
    dataset_title: str
    task_name: str
    task_description: str
    task_type: Literal["classification", "regression"]
    stage: str
    features: list[str]
    protected_attributes: dict[str, bool]
    data_version: str
    git_commit: str
    seed: int
    training_rows: int
    evaluation_rows: int
    evaluation_method: str
    metrics: Mapping[str, MetricValue]
    labels: list[str] = field(default_factory=list)
    y_true: np.ndarray | None = None
    proba: np.ndarray | None = None
    y_pred: np.ndarray | None = None
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    thresholds: str = ""
    fairness: pd.DataFrame | None = None
    fairness_gaps: pd.DataFrame | None = None
    importance: pd.DataFrame | None = None
    importance_method: str = "mean |SHAP| on evaluation rows"
    feature_labels: dict[str, str] = field(default_factory=dict)
    intended_use: str = DEFAULT_INTENDED_USE
    limitations: str = ""
    ci_level: float = 0.95
    created_at: str | None = None


# ----------------------------------------------------------------------------- plots


def _figure(width: float = 5.5, height: float = 4.2) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def _predicted_classes(card: ModelCard) -> np.ndarray | None:
    if card.proba is not None:
        return np.asarray(card.proba, dtype=float).argmax(axis=1)
    if card.y_pred is not None:
        return np.asarray(card.y_pred).astype(int)
    return None


def _proba(card: ModelCard) -> np.ndarray | None:
    if card.proba is None:
        return None
    p = np.asarray(card.proba, dtype=float)
    return np.column_stack([1 - p, p]) if p.ndim == 1 else p


def _plot_confusion(card: ModelCard) -> bytes | None:
    pred = _predicted_classes(card)
    if card.y_true is None or pred is None or not card.labels:
        return None
    table = confusion(np.asarray(card.y_true).astype(int), pred, card.labels)
    counts = table.to_numpy()
    k = len(card.labels)
    fig = _figure(1.6 + 1.1 * k, 1.2 + 1.0 * k)
    ax = fig.add_subplot()
    image = ax.imshow(counts, cmap="cividis")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k), card.labels, rotation=30, ha="right")
    ax.set_yticks(range(k), card.labels)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    ax.set_title("Confusion matrix")
    middle = (counts.max() + counts.min()) / 2
    for i in range(k):
        for j in range(k):
            colour = "black" if counts[i, j] > middle else "white"
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", color=colour)
    return _png(fig)


def _curve_classes(card: ModelCard, y: np.ndarray, k: int) -> list[int]:
    classes = [1] if k == 2 else list(range(k))
    return [c for c in classes if 0 < int(np.sum(y == c)) < y.shape[0]]


def _plot_roc(card: ModelCard) -> bytes | None:
    p = _proba(card)
    if card.y_true is None or p is None:
        return None
    y = np.asarray(card.y_true).astype(int)
    classes = _curve_classes(card, y, p.shape[1])
    if not classes:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    for i, c in enumerate(classes):
        fpr, tpr, _ = roc_curve((y == c).astype(int), p[:, c])
        name = card.labels[c] if c < len(card.labels) else str(c)
        ax.plot(
            fpr, tpr, color=OKABE_ITO[i % len(OKABE_ITO)], label=f"{name} vs rest" if p.shape[1] > 2 else name
        )
    ax.plot([0, 1], [0, 1], linestyle="--", color="#999999", linewidth=1, label="chance")
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    ax.set_title("ROC curve")
    ax.legend(loc="lower right", fontsize="small")
    return _png(fig)


def _plot_pr(card: ModelCard) -> bytes | None:
    p = _proba(card)
    if card.y_true is None or p is None:
        return None
    y = np.asarray(card.y_true).astype(int)
    classes = _curve_classes(card, y, p.shape[1])
    if not classes:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    for i, c in enumerate(classes):
        colour = OKABE_ITO[i % len(OKABE_ITO)]
        precision, recall, _ = precision_recall_curve((y == c).astype(int), p[:, c])
        name = card.labels[c] if c < len(card.labels) else str(c)
        ax.plot(recall, precision, color=colour, label=f"{name} vs rest" if p.shape[1] > 2 else name)
        ax.axhline(float(np.mean(y == c)), color=colour, linestyle=":", linewidth=1)
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_ylim(0, 1.02)
    ax.set_title("Precision-recall curve (dotted: base rate)")
    ax.legend(loc="upper right", fontsize="small")
    return _png(fig)


def _plot_calibration(card: ModelCard, n_bins: int = 10) -> bytes | None:
    p = _proba(card)
    if card.y_true is None or p is None:
        return None
    y = np.asarray(card.y_true).astype(int)
    if p.shape[1] == 2:
        confidence, outcome = p[:, 1], (y == 1).astype(float)
        what = f"P({card.labels[1]})" if len(card.labels) > 1 else "P(class 1)"
        observed = "Observed frequency"
    else:
        confidence, outcome = p.max(axis=1), (p.argmax(axis=1) == y).astype(float)
        what = "Top-label probability"
        observed = "Top-label accuracy"
    bins = np.clip(np.floor(confidence * n_bins).astype(int), 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    filled = counts > 0
    mean_conf = np.bincount(bins, weights=confidence, minlength=n_bins)[filled] / counts[filled]
    mean_out = np.bincount(bins, weights=outcome, minlength=n_bins)[filled] / counts[filled]
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="#999999", linewidth=1, label="perfect calibration")
    ax.plot(mean_conf, mean_out, marker="o", color=OKABE_ITO[0], label="model")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"Mean predicted {what}")
    ax.set_ylabel(observed)
    ax.set_title(f"Reliability diagram ({n_bins} equal-width bins)")
    ax.legend(loc="upper left", fontsize="small")
    return _png(fig)


def _importance_frame(card: ModelCard, top: int = 20) -> pd.DataFrame | None:
    table = card.importance
    if table is None or table.empty or "feature" not in table.columns:
        return None
    value_col = "importance" if "importance" in table.columns else None
    if value_col is None:
        numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
        if not numeric:
            return None
        value_col = numeric[0]
    out = table[["feature", value_col]].rename(columns={value_col: "importance"}).copy()
    out["feature"] = [card.feature_labels.get(str(f), str(f)) for f in out["feature"]]
    return out.sort_values("importance", ascending=False, kind="stable").head(top).reset_index(drop=True)


def _plot_importance(card: ModelCard) -> bytes | None:
    table = _importance_frame(card)
    if table is None:
        return None
    fig = _figure(6.5, 1.2 + 0.3 * len(table))
    ax = fig.add_subplot()
    ordered = table.iloc[::-1]
    ax.barh(ordered["feature"], ordered["importance"], color=OKABE_ITO[0])
    ax.set_xlabel(card.importance_method)
    ax.set_title(f"Feature importance (top {len(table)})")
    return _png(fig)


def _plot_predicted_vs_actual(card: ModelCard) -> bytes | None:
    if card.y_true is None or card.y_pred is None:
        return None
    y = np.asarray(card.y_true, dtype=float)
    f = np.asarray(card.y_pred, dtype=float)
    fig = _figure(5, 5)
    ax = fig.add_subplot()
    ax.scatter(y, f, s=10, alpha=0.5, color=OKABE_ITO[0], edgecolors="none")
    low = float(min(y.min(), f.min()))
    high = float(max(y.max(), f.max()))
    ax.plot(
        [low, high], [low, high], linestyle="--", color="#999999", linewidth=1, label="perfect prediction"
    )
    ax.set_xlabel("Actual")
    ax.set_ylabel("Predicted")
    ax.set_title("Predicted vs actual")
    ax.legend(loc="upper left", fontsize="small")
    return _png(fig)


def _plot_residuals(card: ModelCard) -> bytes | None:
    if card.y_true is None or card.y_pred is None:
        return None
    residuals = np.asarray(card.y_pred, dtype=float) - np.asarray(card.y_true, dtype=float)
    fig = _figure()
    ax = fig.add_subplot()
    ax.hist(residuals, bins=30, color=OKABE_ITO[0], edgecolor="white")
    ax.axvline(0, color=OKABE_ITO[3], linestyle="--", linewidth=1)
    ax.set_xlabel("Residual (predicted - actual)")
    ax.set_ylabel("Students")
    ax.set_title("Residuals")
    return _png(fig)


PLOT_TITLES: dict[str, str] = {
    "confusion_matrix": "Confusion matrix",
    "roc_curve": "ROC curve",
    "pr_curve": "Precision-recall curve",
    "calibration": "Calibration (reliability diagram)",
    "importance": "Feature importance",
    "predicted_vs_actual": "Predicted vs actual",
    "residuals": "Residuals",
}


def _plots(card: ModelCard) -> dict[str, bytes]:
    if card.task_type == "classification":
        makers = {
            "confusion_matrix": _plot_confusion,
            "roc_curve": _plot_roc,
            "pr_curve": _plot_pr,
            "calibration": _plot_calibration,
            "importance": _plot_importance,
        }
    else:
        makers = {
            "predicted_vs_actual": _plot_predicted_vs_actual,
            "residuals": _plot_residuals,
            "importance": _plot_importance,
        }
    out: dict[str, bytes] = {}
    for name, make in makers.items():
        png = make(card)
        if png is not None:
            out[name] = png
    return out


# ----------------------------------------------------------------------------- tables


def _fmt(value: object, key: str = "") -> str:
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return "n/a"
        if key == "n" or key.startswith("n_") or key.endswith("_rows"):
            return str(round(v))
        return f"{v:.3f}"
    return str(value)


@dataclass(frozen=True)
class _Table:
    headers: list[str]
    rows: list[list[str]]


def _frame_table(frame: pd.DataFrame) -> _Table:
    headers = [str(c) for c in frame.columns]
    rows = [
        [_fmt(v, h) for v, h in zip(record, headers, strict=True)] for record in frame.itertuples(index=False)
    ]
    return _Table(headers, rows)


def _metric_table(card: ModelCard) -> _Table:
    level = f"{round(card.ci_level * 100)}% CI"
    rows: list[list[str]] = []
    for name, value in card.metrics.items():
        if isinstance(value, Mapping):
            point = _fmt(value.get("value"), name)
            low, high = value.get("low"), value.get("high")
            ci = f"{_fmt(low, name)} – {_fmt(high, name)}" if low is not None and high is not None else ""
            rows.append([name, point, ci])
        else:
            rows.append([name, _fmt(value, name), ""])
    return _Table(["metric", "value", level], rows)


def _is_summary_metric(name: str) -> bool:
    return not name.startswith(("precision_", "recall_", "f1_")) and name != "n_rows"


def _baseline_table(card: ModelCard) -> _Table | None:
    if not card.baselines:
        return None
    names = [m for m in dict.fromkeys(k for metrics in card.baselines.values() for k in metrics)]
    names = [m for m in names if _is_summary_metric(m)]
    rows = [[model, *[_fmt(metrics.get(m), m) for m in names]] for model, metrics in card.baselines.items()]
    return _Table(["model", *names], rows)


def _md_table(table: _Table) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(cell(h) for h in table.headers) + " |",
        "|" + "|".join("---" for _ in table.headers) + "|",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.rows]
    return "\n".join(lines)


_MARKDOWN = """\
# Model card: {{ card.model_name }}

_Generated {{ created }}._

| | |
|---|---|
| Dataset | {{ card.dataset_title }} |
| Task | {{ card.task_name }}{% if card.task_description %}: {{ card.task_description }}{% endif %} |
| Task type | {{ card.task_type }} |
{% if card.labels %}| Classes | {{ card.labels | join(", ") }} |
{% endif %}| Stage | {{ card.stage }} |
| Data version | `{{ card.data_version }}` |
| Git commit | `{{ card.git_commit }}` |
| Seed | {{ card.seed }} |
| Training rows | {{ card.training_rows }} |
| Evaluation rows | {{ card.evaluation_rows }} |
| Evaluation method | {{ card.evaluation_method }} |

## Intended use

{{ card.intended_use }}

## Responsible use

{{ responsible_use }}

## Features ({{ card.features | length }})

{% for f in card.features %}- {{ f }}
{% endfor %}
## Protected attributes

{% if protected %}{{ protected }}{% else %}None declared.{% endif %}

## Metrics

{{ metrics }}
{% if baselines %}
## Baselines

{{ baselines }}
{% endif %}{% if card.thresholds %}
## Thresholds and risk bands

{{ card.thresholds }}
{% endif %}{% if fairness %}
## Fairness

Per group of each protected attribute (groups below the minimum size are merged or left out).

{{ fairness }}
{% if gaps %}
Largest gaps between groups:

{{ gaps }}
{% endif %}{% endif %}{% if importance %}
## Feature importance

Measured as {{ card.importance_method }}.

{{ importance }}
{% endif %}{% if plots %}
## Plots

{% for name, title in plots %}### {{ title }}

![{{ title }}]({{ name }}.png)

{% endfor %}{% endif %}
## Limitations

{{ card.limitations or "None recorded." }}
"""

_HTML = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Model card: {{ card.model_name }}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #1a1a1a; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; }
th { background: #f2f2f2; }
.note { border-left: 4px solid #0072B2; background: #eef5fb; padding: 0.6rem 1rem; }
figure { display: inline-block; margin: 0.5rem; vertical-align: top; }
figure img { max-width: 28rem; }
figcaption { font-size: 0.85rem; color: #444; }
code { font-size: 0.85rem; }
</style>
</head>
<body>
{% macro table(t) -%}
<table>
<thead><tr>{% for h in t.headers %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in t.rows %}<tr>{% for v in row %}<td>{{ v }}</td>{% endfor %}</tr>
{% endfor %}</tbody>
</table>
{%- endmacro %}
<h1>Model card: {{ card.model_name }}</h1>
<p><em>Generated {{ created }}.</em></p>
<table>
<tr><th>Dataset</th><td>{{ card.dataset_title }}</td></tr>
<tr><th>Task</th><td>{{ card.task_name }}
{%- if card.task_description %}: {{ card.task_description }}{% endif %}</td></tr>
<tr><th>Task type</th><td>{{ card.task_type }}</td></tr>
{% if card.labels %}<tr><th>Classes</th><td>{{ card.labels | join(", ") }}</td></tr>{% endif %}
<tr><th>Stage</th><td>{{ card.stage }}</td></tr>
<tr><th>Data version</th><td><code>{{ card.data_version }}</code></td></tr>
<tr><th>Git commit</th><td><code>{{ card.git_commit }}</code></td></tr>
<tr><th>Seed</th><td>{{ card.seed }}</td></tr>
<tr><th>Training rows</th><td>{{ card.training_rows }}</td></tr>
<tr><th>Evaluation rows</th><td>{{ card.evaluation_rows }}</td></tr>
<tr><th>Evaluation method</th><td>{{ card.evaluation_method }}</td></tr>
</table>
<h2>Intended use</h2>
<p>{{ card.intended_use }}</p>
<h2>Responsible use</h2>
<p class="note">{{ responsible_use }}</p>
<h2>Features ({{ card.features | length }})</h2>
<ul>{% for f in card.features %}<li>{{ f }}</li>{% endfor %}</ul>
<h2>Protected attributes</h2>
{% if protected %}{{ table(protected) }}{% else %}<p>None declared.</p>{% endif %}
<h2>Metrics</h2>
{{ table(metrics) }}
{% if baselines %}<h2>Baselines</h2>
{{ table(baselines) }}{% endif %}
{% if card.thresholds %}<h2>Thresholds and risk bands</h2>
<p>{{ card.thresholds }}</p>{% endif %}
{% if fairness %}<h2>Fairness</h2>
<p>Per group of each protected attribute (groups below the minimum size are merged or left out).</p>
{{ table(fairness) }}
{% if gaps %}<p>Largest gaps between groups:</p>
{{ table(gaps) }}{% endif %}{% endif %}
{% if importance %}<h2>Feature importance</h2>
<p>Measured as {{ card.importance_method }}.</p>
{{ table(importance) }}{% endif %}
{% if images %}<h2>Plots</h2>
{% for title, data in images %}<figure><img alt="{{ title }}" src="data:image/png;base64,{{ data }}">
<figcaption>{{ title }}</figcaption></figure>
{% endfor %}{% endif %}
<h2>Limitations</h2>
<p>{{ card.limitations or "None recorded." }}</p>
</body>
</html>
"""


def render_model_card(card: ModelCard, out_dir: Path) -> dict[str, Path]:
    """Write a model card as Markdown, self-contained HTML and PNG plots.

    Parameters
    ----------
    card : ModelCard
        The content.
    out_dir : Path
        Folder to write into (created if needed).

    Returns
    -------
    dict of str to Path
        ``markdown`` (``model_card.md``), ``html`` (``model_card.html``, plots embedded as
        base64 PNG) and one entry per plot written: classification ``confusion_matrix``,
        ``roc_curve``, ``pr_curve``, ``calibration``; regression ``predicted_vs_actual``,
        ``residuals``; both ``importance`` when an importance table is given. Plots lacking
        their inputs are skipped.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = _plots(card)
    paths: dict[str, Path] = {}
    for name, png in plots.items():
        path = out_dir / f"{name}.png"
        path.write_bytes(png)
        paths[name] = path

    created = card.created_at or datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    protected = (
        _Table(
            ["attribute", "used as feature"],
            [[name, "yes" if used else "no"] for name, used in card.protected_attributes.items()],
        )
        if card.protected_attributes
        else None
    )
    importance_frame = _importance_frame(card)
    tables: dict[str, _Table | None] = {
        "protected": protected,
        "metrics": _metric_table(card),
        "baselines": _baseline_table(card),
        "fairness": _frame_table(card.fairness)
        if card.fairness is not None and not card.fairness.empty
        else None,
        "gaps": _frame_table(card.fairness_gaps)
        if card.fairness_gaps is not None and not card.fairness_gaps.empty
        else None,
        "importance": _frame_table(importance_frame) if importance_frame is not None else None,
    }
    titles = [(name, PLOT_TITLES[name]) for name in plots]

    markdown_env = Environment(autoescape=False, keep_trailing_newline=True)
    markdown = markdown_env.from_string(_MARKDOWN).render(
        card=card,
        created=created,
        responsible_use=RESPONSIBLE_USE,
        plots=titles,
        **{key: _md_table(t) if t is not None else "" for key, t in tables.items()},
    )
    html_env = Environment(autoescape=True)
    html = html_env.from_string(_HTML).render(
        card=card,
        created=created,
        responsible_use=RESPONSIBLE_USE,
        images=[(PLOT_TITLES[name], base64.b64encode(png).decode("ascii")) for name, png in plots.items()],
        **tables,
    )
    paths["markdown"] = out_dir / "model_card.md"
    paths["markdown"].write_text(markdown, encoding="utf-8")
    paths["html"] = out_dir / "model_card.html"
    paths["html"].write_text(html, encoding="utf-8")
    return paths
