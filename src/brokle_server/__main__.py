"""``python -m brokle_server`` runs the CLI."""

from brokle_server.cli import app

app()
