"""Campaigns: tasks (filled by the issue that builds this app)."""
