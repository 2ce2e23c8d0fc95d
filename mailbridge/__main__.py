"""`python -m mailbridge` runs the command line."""

from mailbridge.cli.main import main

main()
