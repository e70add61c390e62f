"""Writes of threads. The pipeline (threads.services.pipeline) is the one way messages are stored; sending,
manual logging and thread operations live in their own modules and are re-exported here."""

from threads.services.conversations import (
    message_move_to_topic,
    thread_assign,
    thread_close,
    thread_create_topic,
    thread_main_get_or_create,
    thread_mark_read,
    thread_merge,
    thread_recompute,
    thread_reopen,
    thread_split,
    unmatched_assign,
)
from threads.services.manual import message_log_manual, message_record_activity
from threads.services.pipeline import (
    IngestResult,
    ingest_batch,
    ingest_fetched,
    raw_events_drain,
    raw_events_process,
    raw_events_replay,
    raw_events_retry,
    raw_events_store,
)
from threads.services.send import message_deliver, message_send

__all__ = [
    "IngestResult",
    "ingest_batch",
    "ingest_fetched",
    "message_deliver",
    "message_log_manual",
    "message_move_to_topic",
    "message_record_activity",
    "message_send",
    "raw_events_drain",
    "raw_events_process",
    "raw_events_replay",
    "raw_events_retry",
    "raw_events_store",
    "thread_assign",
    "thread_close",
    "thread_create_topic",
    "thread_main_get_or_create",
    "thread_mark_read",
    "thread_merge",
    "thread_recompute",
    "thread_reopen",
    "thread_split",
    "unmatched_assign",
]
