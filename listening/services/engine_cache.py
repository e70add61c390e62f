"""The compiled engine of every active rule, one per worker process, rebuilt when the rule set changes.

Every write that changes what the engine should match (a rule created, edited or deleted; a source created,
re-shared or deleted) bumps ``RuleSetVersion`` in its own transaction (:func:`ruleset_bump`). A process asks the
database for the version at most every ``LISTENING_ENGINE_CHECK_S`` seconds and recompiles when it moved, so a
rule change reaches every Celery worker and web process within seconds, without a restart and without a broker
broadcast that a busy or restarting worker could miss.

The cache key is ``(version, changed_at)``, not the version alone: a database restored from a backup (or a test
rolled back) can show an older number again with different rules behind it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.utils import timezone

from accounts.models import User
from accounts.selectors import visible
from listening.models import ListeningRule, ListeningSource
from listening.query import Engine, RuleSpec

log = logging.getLogger(__name__)

VersionKey = tuple[int, dt.datetime | None]


@dataclass
class _Cache:
    engine: Engine | None = None
    key: VersionKey | None = None
    checked_at: float = 0.0  # time.monotonic() of the last version check


_cache = _Cache()
_build_lock = threading.Lock()


def ruleset_bump() -> int:
    """Increment the rule-set version in the caller's transaction (creating row 1 on first use); return it.

    One statement, so two concurrent writers each get their own increment. This process's engine is marked
    stale at once, so the writer's next evaluation (a dry run, a test) sees the change without waiting."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO listening_rulesetversion (id, version, changed_at) VALUES (1, 1, %s) "
            "ON CONFLICT (id) DO UPDATE SET version = listening_rulesetversion.version + 1, "
            "changed_at = EXCLUDED.changed_at RETURNING version",
            [timezone.now()],
        )
        version = int(cursor.fetchone()[0])
    engine_mark_stale()
    return version


def ruleset_version() -> VersionKey:
    with connection.cursor() as cursor:
        cursor.execute("SELECT version, changed_at FROM listening_rulesetversion WHERE id = 1")
        row = cursor.fetchone()
    return (int(row[0]), row[1]) if row else (0, None)


def engine_mark_stale() -> None:
    """Check the version on the next :func:`engine_current` call instead of trusting the cache until then."""
    _cache.checked_at = 0.0


def engine_reset() -> None:
    """Forget the cached engine (tests; a worker that wants a clean slate)."""
    global _cache
    _cache = _Cache()


def engine_current() -> Engine:
    """The engine compiled from every active rule, rebuilt when ``RuleSetVersion`` moved since it was built."""
    cache = _cache
    now = time.monotonic()
    if cache.engine is not None and now - cache.checked_at < settings.LISTENING_ENGINE_CHECK_S:
        return cache.engine
    key = ruleset_version()
    if cache.engine is not None and key == cache.key:
        cache.checked_at = now
        return cache.engine
    with _build_lock:
        # The rules are read after the version: an engine may include a change newer than its key, never miss one
        # older than it (a newer change is picked up at the next check anyway).
        engine = Engine.compile(rule_specs(), version=key[0])
        for rule_id, error in getattr(engine, "errors", {}).items():
            log.warning("listening rule %s does not compile and is skipped: %s", rule_id, error)
        _cache.engine, _cache.key, _cache.checked_at = engine, key, time.monotonic()
    return engine


def _visible_source_ids(owner_ids: set[int]) -> dict[int, frozenset[int] | None]:
    """Per rule owner: the ids of the listening sources they may see, or None for "every source" (admins)."""
    result: dict[int, frozenset[int] | None] = {}
    for owner in User.objects.filter(pk__in=owner_ids):
        # A deactivated owner's rules keep reading what the owner could read (their team's managers get the
        # alerts now): the in-memory flag only lets the visibility policy answer as it did before they left.
        owner.is_active = True
        if owner.is_admin_role:
            result[owner.pk] = None
        else:
            result[owner.pk] = frozenset(visible(ListeningSource.objects.all(), owner).values_list("pk", flat=True))
    return result


def rule_specs(rules: list[ListeningRule] | None = None) -> list[RuleSpec]:
    """What the engine needs of each active rule.

    A rule runs over the posts of the sources its owner may see: an empty source list means "every source the
    owner can see", spelled out here, so nobody reads another team's private feed through a catch-all rule.
    Messages are not narrowed: mentions of messages are filtered by contact visibility when read.
    """
    if rules is None:
        rules = list(
            ListeningRule.objects.filter(active=True).only(
                "id", "query", "channels", "include_messages", "include_posts", "owner_id"
            )
        )
    if not rules:
        return []
    through = ListeningRule.sources.through
    chosen: dict[int, set[int]] = {}
    for rule_id, source_id in through.objects.filter(listeningrule_id__in=[r.pk for r in rules]).values_list(
        "listeningrule_id", "listeningsource_id"
    ):
        chosen.setdefault(rule_id, set()).add(source_id)
    owner_sources = _visible_source_ids({r.owner_id for r in rules if r.owner_id})
    specs = []
    for rule in rules:
        include_posts = rule.include_posts
        # An ownerless rule (made in the Django admin) is the administrators': it sees every source.
        allowed = owner_sources.get(rule.owner_id) if rule.owner_id else None
        picked = chosen.get(rule.pk, set())
        if picked:
            source_ids = frozenset(picked if allowed is None else picked & allowed)
        else:
            source_ids = frozenset() if allowed is None else allowed
        if include_posts and (picked or allowed is not None) and not source_ids:
            include_posts = False  # no source it may read: an empty set would mean "all" to the engine
        specs.append(
            RuleSpec(
                rule_id=rule.pk, query=rule.query, channels=frozenset(rule.channels or ()),
                include_messages=rule.include_messages, include_posts=include_posts, source_ids=source_ids,
            )
        )  # fmt: skip
    return specs
