"""The parts of pod building (``kubatch.core.podspec`` assembles them), one module per job kind
or concern: names, quantities, overrides, job kinds, container jobs, multi-node jobs,
tolerations and resource needs. Pure: no I/O."""
