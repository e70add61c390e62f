"""Rule writes (create, update, delete: each bumps the rule-set version in its transaction) and the dry run."""

from __future__ import annotations

import re
import time
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from accounts.selectors import can_see, visibility_q, visible
from activities.models import Kind as ActivityKind
from crm.errors import DomainError, NotFound
from listening.models import ListeningRule, ListeningSource, Post
from listening.query import Document, Engine, QueryError, RuleSpec, highlight_snippet, sentiment, validate
from listening.services.documents import (
    LISTENED_MANUAL_CHANNELS,
    clean_handle,
    message_document,
    message_values,
    post_text,
)
from listening.services.engine_cache import ruleset_bump
from listening.services.results import DryRunHit, DryRunResult
from listening.services.sharing import NotEditor, can_edit_owned, sharing_changes
from threads.models import ChannelAccount, Direction, Message

_CHANNEL_RE = re.compile(r"^[a-z][a-z0-9_]{0,19}$")
ACTION_FIELDS = (
    "alert_in_app", "alert_cooldown_minutes", "alert_email_digest", "activity_for", "activity_kind",
    "activity_title", "activity_cooldown_minutes", "tag", "spike_alerts", "spike_k", "spike_min_count",
)  # fmt: skip
RULE_FIELDS = (
    "name",
    "query",
    "description",
    "active",
    "include_messages",
    "include_posts",
    "channels",
    *ACTION_FIELDS,
)
MAX_COOLDOWN_MINUTES = 525_600  # a year
DRY_RUN_MAX_LIMIT = 5000


class RuleQueryInvalid(DomainError):
    """The rule's query does not parse; ``position``/``end`` (0-based) let the editor underline the problem."""

    code = "invalid_query"

    def __init__(self, error: QueryError) -> None:
        super().__init__(f"The query is not valid: {error}", fields={"query": [str(error)]})
        self.error = error
        self.position = error.position
        self.end = error.end
        self.extra = {"position": error.position, "end": error.end}


def query_check(query: str) -> str:
    """The query, stripped, or RuleQueryInvalid naming the place of the problem."""
    query = (query or "").strip()
    if not query:
        raise RuleQueryInvalid(QueryError("Write a query: words, “phrases”, AND, OR, NOT …", position=0, end=0))
    try:
        validate(query)
    except QueryError as exc:
        raise RuleQueryInvalid(exc) from None
    return query


def _bool(data: dict[str, Any], name: str, errors: dict[str, list[str]]) -> bool:
    value = data[name]
    if isinstance(value, bool):
        return value
    if value in ("true", "on", "1", 1):
        return True
    if value in ("false", "off", "0", 0, "", None):
        return False
    errors[name] = ["Yes or no."]
    return False


def _int(data: dict[str, Any], name: str, errors: dict[str, list[str]], low: int, high: int) -> int:
    try:
        value = int(data[name])
    except (TypeError, ValueError):
        errors[name] = ["A whole number."]
        return low
    if not low <= value <= high:
        errors[name] = [f"Between {low} and {high}."]
    return value


def _clean(data: dict[str, Any], errors: dict[str, list[str]]) -> dict[str, Any]:
    """Field-by-field checks of the rule's own columns; every problem is collected, not just the first."""
    cleaned: dict[str, Any] = {}
    for name in RULE_FIELDS:
        if name not in data:
            continue
        if name == "name":
            value = str(data[name] or "").strip()
            if not value:
                errors[name] = ["Give the rule a name."]
            elif len(value) > 200:
                errors[name] = ["At most 200 characters."]
            cleaned[name] = value
        elif name == "query":
            try:
                cleaned[name] = query_check(str(data[name] or ""))
            except RuleQueryInvalid as exc:
                errors.update(exc.fields)
                cleaned["_query_error"] = exc
        elif name in ("description", "activity_title"):
            cleaned[name] = str(data[name] or "").strip()[: 200 if name == "activity_title" else 4000]
        elif name in ("active", "include_messages", "include_posts", "alert_in_app", "alert_email_digest",
                      "spike_alerts"):  # fmt: skip
            cleaned[name] = _bool(data, name, errors)
        elif name == "channels":
            channels = data[name] or []
            if isinstance(channels, str) or not all(isinstance(c, str) for c in channels):
                errors[name] = ["A list of channel names."]
                continue
            bad = [c for c in channels if not _CHANNEL_RE.match(c)]
            if bad:
                errors[name] = [f"Unknown channel {bad[0]!r}."]
            cleaned[name] = sorted(set(channels))
        elif name in ("alert_cooldown_minutes", "activity_cooldown_minutes"):
            cleaned[name] = _int(data, name, errors, 0, MAX_COOLDOWN_MINUTES)
        elif name == "spike_min_count":
            cleaned[name] = _int(data, name, errors, 1, 1_000_000)
        elif name == "spike_k":
            try:
                value = float(data[name])
            except (TypeError, ValueError):
                errors[name] = ["A number of standard deviations."]
                continue
            if not 0.1 <= value <= 50:
                errors[name] = ["Between 0.1 and 50."]
            cleaned[name] = value
        elif name == "activity_for":
            value = data[name] or ""
            if value not in ListeningRule.ActivityFor.values:
                errors[name] = ["The contact's owner, the rule's owner, or nobody."]
            cleaned[name] = value
        elif name == "activity_kind":
            value = data[name] or ActivityKind.TASK
            if value not in ActivityKind.values:
                errors[name] = ["Unknown activity kind."]
            cleaned[name] = value
        elif name == "tag":
            value = str(data[name] or "").strip()
            if len(value) > 64:
                errors[name] = ["At most 64 characters."]
            cleaned[name] = value
    return cleaned


def _source_ids(actor: User, data: dict[str, Any], errors: dict[str, list[str]]) -> list[int] | None:
    raw = data.get("source_ids", data.get("sources"))
    if raw is None:
        return None
    try:
        ids = sorted({int(getattr(s, "pk", s)) for s in raw})
    except (TypeError, ValueError):
        errors["sources"] = ["A list of source ids."]
        return None
    found = set(visible(ListeningSource.objects.filter(pk__in=ids), actor).values_list("pk", flat=True))
    missing = [i for i in ids if i not in found]
    if missing:
        errors["sources"] = [f"No such source: {missing[0]}."]
    return ids


def _raise(errors: dict[str, list[str]], cleaned: dict[str, Any]) -> None:
    if not errors:
        return
    query_error = cleaned.get("_query_error")
    if query_error is not None and list(errors) == ["query"]:
        raise query_error
    exc = DomainError("The rule has invalid fields.", fields=errors, code="invalid_rule")
    if query_error is not None:
        exc.extra = query_error.extra  # type: ignore[attr-defined]
    raise exc


@transaction.atomic
def rule_create(*, actor: User, data: dict[str, Any]) -> ListeningRule:
    """``data``: name, query, description, active, include_messages, include_posts, channels, source_ids, action
    fields of ListeningRule, visibility, team. Raises DomainError (fields={"query": ["… at character N"]}, and
    ``extra={"position": n, "end": m}`` for the editor) when the query does not parse. Bumps RuleSetVersion."""
    errors: dict[str, list[str]] = {}
    data = {"name": "", "query": "", **data}
    cleaned = _clean(data, errors)
    source_ids = _source_ids(actor, data, errors)
    _raise(errors, cleaned)
    cleaned.pop("_query_error", None)
    sharing = sharing_changes(actor, data, None)
    if cleaned.get("activity_title") and not cleaned.get("activity_for"):
        raise DomainError("Choose who gets the activity.", fields={"activity_for": ["Required with a title."]})
    rule = ListeningRule(owner=actor, **cleaned, **sharing)
    rule.save()
    if source_ids:
        rule.sources.set(source_ids)
    ruleset_bump()
    return rule


def _require_editor(actor: User, rule: ListeningRule) -> None:
    if not can_see(actor, rule):
        raise NotFound("No such rule.")
    if not can_edit_owned(actor, rule.owner_id, rule.team_id):
        raise NotEditor("Only the rule's owner, their manager or an admin can change this rule.")


@transaction.atomic
def rule_update(*, actor: User, rule: ListeningRule, data: dict[str, Any]) -> ListeningRule:
    """Change any of the fields ``rule_create`` takes (only those present in ``data``). Bumps RuleSetVersion."""
    _require_editor(actor, rule)
    rule = ListeningRule.objects.select_for_update().get(pk=rule.pk)
    errors: dict[str, list[str]] = {}
    cleaned = _clean(data, errors)
    source_ids = _source_ids(actor, data, errors)
    _raise(errors, cleaned)
    cleaned.pop("_query_error", None)
    sharing = sharing_changes(actor, data, rule)
    for name, value in {**cleaned, **sharing}.items():
        setattr(rule, name, value)
    if rule.activity_title and not rule.activity_for:
        raise DomainError("Choose who gets the activity.", fields={"activity_for": ["Required with a title."]})
    rule.updated_at = timezone.now()
    rule.save()
    if source_ids is not None:
        rule.sources.set(source_ids)
    ruleset_bump()
    return rule


@transaction.atomic
def rule_delete(*, actor: User, rule: ListeningRule) -> None:
    """Delete the rule with its mentions, action state and spike alerts. Bumps RuleSetVersion."""
    _require_editor(actor, rule)
    ListeningRule.objects.filter(pk=rule.pk).delete()
    ruleset_bump()


# --- Dry run ----------------------------------------------------------------------------------------------------


def _visible_messages(actor: User) -> Q:
    """Messages ``actor`` may read in full: of a contact they see (or, unmatched, of an account they see), and not
    a private mailbox's unless it is theirs. A hit shows text, so a body they may not read is never scanned."""
    in_thread = Q(contact__isnull=False) & visibility_q(actor, prefix="contact__")
    unmatched = Q(contact__isnull=True) & Q(
        channel_account__in=visible(ChannelAccount.objects.all(), actor).values("pk")
    )
    readable = Q(is_private=False) | Q(body_visible_to__contains=[actor.pk])
    listened = Q(direction=Direction.INBOUND) | Q(channel__in=list(LISTENED_MANUAL_CHANNELS))
    return (in_thread | unmatched) & readable & listened & Q(deleted_at__isnull=True)


def rule_dry_run(
    *, actor: User, query: str, channels: list[str] | None = None, include_messages: bool = True,
    include_posts: bool = True, limit: int = 1000, max_hits: int = 50,
) -> DryRunResult:  # fmt: skip
    """What ``query`` would have matched in the last ``limit`` stored posts and messages ``actor`` can see. Never
    raises for a bad query: returns ``error`` instead (the editor shows it live). Stores nothing."""
    started = time.perf_counter()
    result = DryRunResult()
    try:
        query = query_check(query)
    except RuleQueryInvalid as exc:
        result.error = exc.error
        return result
    limit = max(1, min(int(limit), DRY_RUN_MAX_LIMIT))
    spec = RuleSpec(
        rule_id=0, query=query, channels=frozenset(channels or ()), include_messages=include_messages,
        include_posts=include_posts,
    )  # fmt: skip
    engine = Engine.compile([spec], version=0)
    compile_error = getattr(engine, "errors", {}).get(0)
    if compile_error is not None:
        result.error = compile_error
        return result
    candidates: list[tuple[Any, str, int, Document, str, int | None]] = []
    if include_messages:
        rows = message_values(Message.objects.filter(_visible_messages(actor))).order_by("-id")[:limit]
        for row in rows:
            author = row["author_name"] or row["author_address"]
            candidates.append((row["sent_at"], "message", row["id"], message_document(row), author, row["contact_id"]))
    if include_posts:
        sources = visible(ListeningSource.objects.all(), actor).values("pk")
        posts = (
            Post.objects.filter(source__in=sources, deleted_at__isnull=True)
            .order_by("-id")
            .values("id", "source_id", "channel", "title", "text", "lang", "latitude", "longitude", "posted_at",
                    "author_name", "author_handle", "contact_id", "contact__lifecycle_stage")[:limit]
        )  # fmt: skip
        for p in posts:
            doc = Document(
                text=post_text(p["title"], p["text"]), kind="post", channel=p["channel"], source_id=p["source_id"],
                lang=p["lang"], author_handle=clean_handle(p["author_handle"]), author_contact_id=p["contact_id"],
                author_is_customer=p["contact__lifecycle_stage"] == "customer", latitude=p["latitude"],
                longitude=p["longitude"],
            )  # fmt: skip
            author = p["author_name"] or (f"@{p['author_handle']}" if p["author_handle"] else "")
            candidates.append((p["posted_at"], "post", p["id"], doc, author, p["contact_id"]))
    # The newest ``limit`` of both kinds together.
    candidates.sort(key=lambda c: (c[0], c[2]), reverse=True)
    for occurred_at, kind, object_id, doc, author, contact_id in candidates[:limit]:
        result.scanned += 1
        matches = engine.match(doc)
        if not matches:
            continue
        result.matched += 1
        if len(result.hits) >= max_hits:
            continue
        match = matches[0]
        snippet, highlights = highlight_snippet(doc.text, match.spans)
        label = doc.sentiment_label or sentiment(doc.text)[1]
        result.hits.append(
            DryRunHit(
                kind=kind, object_id=object_id, channel=doc.channel, occurred_at=occurred_at, author=author,
                contact_id=contact_id, snippet=snippet, highlights=[list(h) for h in highlights],
                terms=list(match.terms), sentiment=label,
            )
        )  # fmt: skip
    result.elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    return result
