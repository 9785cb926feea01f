"""kubatch benchmarks against a private local control plane with kwok nodes (`python -m bench.run`).

They print tables, write `bench/results/<name>.json` (and PNG plots when matplotlib is installed)
and never assert timings: every kubatch figure sits next to a baseline measured in the same run.
"""
