"""`python -m mailwarden` runs the command line."""

from mailwarden.cli import main

main()
