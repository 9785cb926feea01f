"""kubatch: AWS Batch semantics on Kubernetes (custom resources, operator, CLI)."""

__version__ = "0.1.0"
