"""Retain: a student early-warning system (spec-driven data, tracked models, one predictor)."""

__version__ = "0.1.0"
