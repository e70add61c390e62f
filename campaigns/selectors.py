"""Campaigns: selectors (filled by the issue that builds this app)."""
