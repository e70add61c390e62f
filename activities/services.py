"""Activities and plans: services (filled by the issue that builds this app)."""
