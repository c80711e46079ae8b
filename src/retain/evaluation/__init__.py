"""Evaluation: metrics with confidence intervals, fairness audits, explanations and model cards."""
