"""Browser tests of the web console (a package: its stack is shared by its modules, then stopped)."""
