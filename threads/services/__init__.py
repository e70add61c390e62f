"""Writes of threads. The pipeline (threads.services.pipeline) is the one way messages are stored; sending,
manual logging and thread operations live in their own modules and are re-exported here."""

from threads.services.pipeline import (
    IngestResult,
    ingest_batch,
    ingest_fetched,
    raw_events_process,
    raw_events_replay,
    raw_events_retry,
    raw_events_store,
)
from threads.services.send import message_deliver, message_send

__all__ = [
    "IngestResult", "ingest_batch", "ingest_fetched", "message_deliver", "message_send", "raw_events_process",
    "raw_events_replay", "raw_events_retry", "raw_events_store",
]  # fmt: skip
