"""Channel account writes: connect, update, pause, resume, rotate webhook secret (filled by the API work)."""
