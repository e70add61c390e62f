"""Activities and plans: api (filled by the issue that builds this app)."""
