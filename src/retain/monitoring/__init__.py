"""Monitoring: Prometheus metrics (and, later, drift and live performance)."""
