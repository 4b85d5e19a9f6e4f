"""Builders of the bundled Grafana dashboards (see scripts/gen-dashboards.py)."""
