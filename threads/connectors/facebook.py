"""facebook connector (being written)."""
