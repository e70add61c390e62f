"""Tasks: the duplicate finder."""
