"""Insights for educators: distributions, outcome rates by group and corrected group comparisons.

``stats`` chooses and runs the tests (Welch's t-test, Welch's ANOVA or Kruskal-Wallis,
chi-square or Fisher's exact) with effect sizes and the Holm correction; ``eda`` decides from a
dataset spec what to summarise and compare; ``report`` renders the standalone HTML page
(``retain report eda``) and the plots the dashboard shows; ``cli`` is the Typer sub-app.
Nothing is computed or configured at import time (matplotlib is imported when a plot is drawn).
"""

from retain.insights.eda import EdaOptions, EdaReport, Outcome, build_eda, outcomes
from retain.insights.report import figure_png, plot_comparison, plot_histogram, render_html, write_html
from retain.insights.stats import Comparison, EffectSize, GroupSummary, adjust_p_values, correct, describe

__all__ = [
    "Comparison",
    "EdaOptions",
    "EdaReport",
    "EffectSize",
    "GroupSummary",
    "Outcome",
    "adjust_p_values",
    "build_eda",
    "correct",
    "describe",
    "figure_png",
    "outcomes",
    "plot_comparison",
    "plot_histogram",
    "render_html",
    "write_html",
]
