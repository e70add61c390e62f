"""sms connector (being written)."""
