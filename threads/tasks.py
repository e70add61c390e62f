"""Conversation threads: tasks (filled by the issue that builds this app)."""
