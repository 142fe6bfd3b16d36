"""Prometheus metrics: a registry per service, the snapshot's gauges collected at scrape time."""

__all__ = ["metrics"]
