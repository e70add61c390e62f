"""Manual channels: calls, meetings, in-person touches, voicemail and notes logged as thread messages."""
