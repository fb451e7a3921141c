"""``python -m edgessl`` runs the CLI."""

from edgessl.cli import main

main()
