"""Thread operations: split, merge, move to topic, assign, close, reopen, mark read (filled by the UI work)."""
