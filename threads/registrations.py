"""How threads plugs into contacts (timeline, merge, GDPR) and My day."""
