"""I/O with the Kubernetes API: a lean async client, list+watch informers, and the in-memory view."""
