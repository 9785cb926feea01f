"""The `kubatch` command line."""
