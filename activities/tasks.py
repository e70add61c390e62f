"""Activities and plans: tasks (filled by the issue that builds this app)."""
