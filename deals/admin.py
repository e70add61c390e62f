"""Deals and pipelines: admin (filled by the issue that builds this app)."""
