"""twitter connector (being written)."""
