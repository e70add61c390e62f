"""Listening writes. Every module of this package is re-exported here: import from ``listening.services``.

- ``rules``: rule create/update/delete (each bumps ``RuleSetVersion`` in its transaction) and the dry run;
- ``engine_cache``: the compiled engine of all active rules, per process, rebuilt when the version moves;
- ``evaluate``: thread messages and public posts through the engine, mentions stored in bulk;
- ``actions``: alerts, activities and tags, each behind an atomically claimed cooldown;
- ``digest``: the daily e-mail digest; ``spikes``: spike alerts; ``sources``: listening sources and fetching.
"""

from __future__ import annotations

from listening.models import Mention
from listening.query import Document, Engine, Match, RuleSpec
from listening.services.actions import ActionOutcome, NewMention, actions_run, cooldowns_claim
from listening.services.digest import mention_digests_send
from listening.services.engine_cache import (
    engine_current,
    engine_mark_stale,
    engine_reset,
    rule_specs,
    ruleset_bump,
    ruleset_version,
)
from listening.services.evaluate import mentions_evaluate_messages, post_external_id, posts_ingest
from listening.services.results import DryRunHit, DryRunResult, EvaluateResult
from listening.services.rules import RuleQueryInvalid, query_check, rule_create, rule_delete, rule_dry_run, rule_update
from listening.services.sources import (
    source_create,
    source_delete,
    source_fetch,
    source_fetch_now,
    source_secret_rotate,
    source_update,
)
from listening.services.spikes import spike_scan

__all__ = [
    "ActionOutcome",
    "DryRunHit",
    "DryRunResult",
    "EvaluateResult",
    "NewMention",
    "RuleQueryInvalid",
    "actions_run",
    "cooldowns_claim",
    "engine_current",
    "engine_mark_stale",
    "engine_reset",
    "mention_digests_send",
    "mention_matches",
    "mentions_evaluate_messages",
    "post_external_id",
    "posts_ingest",
    "query_check",
    "rule_create",
    "rule_delete",
    "rule_dry_run",
    "rule_specs",
    "rule_update",
    "ruleset_bump",
    "ruleset_version",
    "source_create",
    "source_delete",
    "source_fetch",
    "source_fetch_now",
    "source_secret_rotate",
    "source_update",
    "spike_scan",
]


def mention_matches(mention: Mention) -> list[Match]:
    """Where the mention's rule matches its post or message now (spans into the full text), e.g. to highlight
    every occurrence on a detail page. Empty when the text is gone or the rule no longer matches it."""
    from listening.services.documents import message_document, message_values, post_text
    from threads.models import Message

    rule = mention.rule
    spec = RuleSpec(rule_id=rule.pk, query=rule.query, channels=frozenset(), include_messages=True, include_posts=True)
    if mention.post_id:
        post = mention.post
        doc = Document(text=post_text(post.title, post.text), kind="post", channel=post.channel, source_id=None)
    else:
        row = message_values(Message.objects.filter(pk=mention.message_id)).first()
        if row is None:
            return []
        doc = message_document(row)
    return Engine.compile([spec]).match(doc)
