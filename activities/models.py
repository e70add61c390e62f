"""Activities and plans: models (filled by the issue that builds this app)."""
