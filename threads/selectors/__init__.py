"""Reads of threads, visibility-filtered (filled by the UI work)."""
