"""Deals and pipelines: models (filled by the issue that builds this app)."""
