"""Observability: Prometheus metrics and Kubernetes Events."""
