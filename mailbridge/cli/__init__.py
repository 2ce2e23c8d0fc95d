"""The `mailbridge` command line: one module per command."""
