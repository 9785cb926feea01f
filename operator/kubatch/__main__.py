"""`python -m kubatch` runs the operator (as in the container image)."""

from kubatch.cli.operator_cmd import operator_cmd

if __name__ == "__main__":
    operator_cmd()
