"""The `cpts` command."""
