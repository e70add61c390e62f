"""Deals and pipelines: services (filled by the issue that builds this app)."""
