"""Shared test support: object factories, typed fakes of the ports, and the HTTP edge's harness."""

__all__ = ["edge", "factories", "fakes"]
