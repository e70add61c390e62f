"""Deals and pipelines: tasks (filled by the issue that builds this app)."""
