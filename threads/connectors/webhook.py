"""Signed inbound webhook connector (filled by the webhook work)."""
