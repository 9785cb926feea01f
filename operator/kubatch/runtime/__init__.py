"""The operator's runtime: reconcile loops that turn the cluster view into API writes."""
