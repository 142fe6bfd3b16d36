"""The edges where requests come in: kube-scheduler's extender verbs over HTTP (the wire format and the app),
and ``tideover explain`` over a kubectl dump. Memory only: no API call while kube-scheduler waits."""

__all__ = ["app", "explain", "wire"]
