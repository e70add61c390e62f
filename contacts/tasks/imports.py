"""Tasks: CSV imports."""
