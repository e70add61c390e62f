"""Listening sources: create, change, delete, rotate a webhook secret, and fetch one source (under a lock, with
back-off). Source writes bump the rule-set version: which sources a rule may read depends on who sees them."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import secrets
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import User
from accounts.selectors import can_see
from crm.celery import bounded_countdown
from crm.errors import DomainError, NotFound
from crm.locks import advisory_lock
from listening.models import ListeningSource
from listening.services.engine_cache import ruleset_bump
from listening.services.evaluate import posts_ingest
from listening.services.results import EvaluateResult
from listening.services.sharing import NotEditor, can_edit_owned, sharing_changes
from listening.sources import source_fetcher_for
from threads.connectors import ChannelAuthError, ChannelRateLimited, ConnectorError
from threads.models import ChannelAccount
from threads.services.channel_accounts import channel_account_throttle

log = logging.getLogger(__name__)

Kind = ListeningSource.Kind
_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{1,79}$")
ACCOUNT_KINDS = {Kind.TWITTER_SEARCH: ChannelAccount.Kind.TWITTER, Kind.FACEBOOK_PAGE: ChannelAccount.Kind.FACEBOOK}
POLLED_KINDS = (Kind.RSS, Kind.TWITTER_SEARCH, Kind.FACEBOOK_PAGE)
MIN_INTERVAL_S, MAX_INTERVAL_S = 60, 7 * 24 * 3600
LOCK_NAMESPACE = 7302  # first key of the two-key advisory lock: "listening source"


def _require_editor(actor: User, source: ListeningSource) -> None:
    if not can_see(actor, source):
        raise NotFound("No such source.")
    if not can_edit_owned(actor, source.owner_id, source.team_id):
        raise NotEditor("Only the source's owner, their manager or an admin can change it.")


def _slug(value: str, name: str) -> str:
    slug = (value or "").strip().lower()
    if not slug:
        base = slugify(name)[:70].strip("-_") or "source"
        slug, n = base, 1
        while ListeningSource.objects.filter(slug=slug).exists():
            n += 1
            slug = f"{base}-{n}"
    if not _SLUG_RE.match(slug):
        raise DomainError(
            "The slug names the source in its webhook address: 2-80 lower-case letters, digits, '-' or '_'.",
            fields={"slug": ["Invalid slug."]}, code="invalid_slug",
        )  # fmt: skip
    if ListeningSource.objects.filter(slug=slug).exists():
        raise DomainError(f"The slug {slug!r} is taken.", fields={"slug": ["Already in use."]}, code="slug_taken")
    return slug


def _clean(actor: User, kind: str, data: dict[str, Any], source: ListeningSource | None) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    out: dict[str, Any] = {}
    if "name" in data or source is None:
        name = str(data.get("name") or "").strip()
        if not name:
            errors["name"] = ["Give the source a name."]
        out["name"] = name[:200]
    if "url" in data or (source is None and kind == Kind.RSS):
        url = str(data.get("url") or "").strip()
        if kind == Kind.RSS and not url.lower().startswith(("http://", "https://")):
            errors["url"] = ["The address of the RSS or Atom feed (http:// or https://)."]
        out["url"] = url[:2000] if kind == Kind.RSS else ""
    if "config" in data:
        config = data.get("config") or {}
        if not isinstance(config, dict):
            errors["config"] = ["Expected an object."]
        out["config"] = config
    if "fetch_interval_s" in data:
        try:
            interval = int(data["fetch_interval_s"])
        except (TypeError, ValueError):
            interval = 0
        if not MIN_INTERVAL_S <= interval <= MAX_INTERVAL_S:
            errors["fetch_interval_s"] = [f"Between {MIN_INTERVAL_S} and {MAX_INTERVAL_S} seconds."]
        out["fetch_interval_s"] = interval
    if "status" in data:
        status = data.get("status") or ListeningSource.Status.ACTIVE
        if status not in (ListeningSource.Status.ACTIVE, ListeningSource.Status.PAUSED):
            errors["status"] = ["Active or paused."]
        out["status"] = status
    account_value = data.get("channel_account", data.get("channel_account_id"))
    if kind in ACCOUNT_KINDS and ("channel_account" in data or "channel_account_id" in data or source is None):
        wanted = ACCOUNT_KINDS[kind]
        account = None
        if isinstance(account_value, ChannelAccount):
            account = account_value
        elif account_value not in (None, ""):
            account = ChannelAccount.objects.filter(pk=account_value).first()
        if account is None or not can_see(actor, account):
            errors["channel_account"] = [f"Choose a connected {wanted.label} account."]
        elif account.kind != wanted:
            errors["channel_account"] = [f"{account.name} is not a {wanted.label} account."]
        out["channel_account"] = account
    elif kind not in ACCOUNT_KINDS:
        out["channel_account"] = None
    if errors:
        raise DomainError("The source has invalid fields.", fields=errors, code="invalid_source")
    return out


@transaction.atomic
def source_create(*, actor: User, data: dict[str, Any]) -> ListeningSource:
    """``data``: name, kind, slug (empty: made from the name), url (RSS), channel_account (twitter_search,
    facebook_page), config, fetch_interval_s, status, visibility, team. A webhook source's generated secret is
    on ``source.secret`` and ``source.issued_secret``: show it to the creator now, it is never shown again."""
    kind = data.get("kind") or ""
    if kind not in Kind.values:
        raise DomainError(f"Unknown source kind {kind!r}.", fields={"kind": ["Invalid choice."]})
    cleaned = _clean(actor, kind, data, None)
    sharing = sharing_changes(actor, data, None)
    slug = _slug(str(data.get("slug") or ""), cleaned["name"])
    issued = secrets.token_urlsafe(32) if kind == Kind.WEBHOOK else ""
    try:
        with transaction.atomic():
            source = ListeningSource.objects.create(
                kind=kind, slug=slug, owner=actor, secret=issued,
                next_fetch_at=timezone.now() if kind in POLLED_KINDS else None, **cleaned, **sharing,
            )  # fmt: skip
    except IntegrityError:
        raise DomainError("The slug is taken.", fields={"slug": ["Already in use."]}, code="slug_taken") from None
    ruleset_bump()
    if kind in POLLED_KINDS and source.status == ListeningSource.Status.ACTIVE:
        _enqueue_fetch(source.pk)
    source.issued_secret = issued  # type: ignore[attr-defined]
    return source


@transaction.atomic
def source_update(*, actor: User, source: ListeningSource, data: dict[str, Any]) -> ListeningSource:
    """Change a source; its kind and slug stay (senders and feeds are configured with them). Resuming a paused or
    failing source clears its failures and makes it due now."""
    _require_editor(actor, source)
    source = ListeningSource.objects.select_for_update().get(pk=source.pk)
    fixed = {k for k in ("kind", "slug") if k in data and data[k] not in (None, "", getattr(source, k))}
    if fixed:
        raise DomainError(
            "A source keeps its kind and slug; create a new source instead.",
            fields={k: ["Cannot be changed."] for k in sorted(fixed)},
        )  # fmt: skip
    cleaned = _clean(actor, source.kind, data, source)
    sharing = sharing_changes(actor, data, source)
    Status = ListeningSource.Status
    if cleaned.get("status") == Status.ACTIVE and source.status == Status.FAILING:
        # Saving the form of a failing source is not a fix: it stays failing until a fetch succeeds.
        cleaned.pop("status")
    elif cleaned.get("status") == Status.ACTIVE and source.status == Status.PAUSED:
        source.consecutive_failures, source.last_error, source.next_fetch_at = 0, "", timezone.now()
    if any(k in cleaned and cleaned[k] != getattr(source, k) for k in ("url", "config", "channel_account")):
        source.next_fetch_at = timezone.now()  # new settings: try them now, whatever the back-off said
    for name, value in {**cleaned, **sharing}.items():
        setattr(source, name, value)
    source.save()
    ruleset_bump()
    return source


@transaction.atomic
def source_delete(*, actor: User, source: ListeningSource) -> None:
    """Delete the source with its posts and their mentions."""
    _require_editor(actor, source)
    ListeningSource.objects.filter(pk=source.pk).delete()
    ruleset_bump()


@transaction.atomic
def source_secret_rotate(*, actor: User, source: ListeningSource) -> str:
    """A new secret for a webhook source, effective at once (the old one stops working). Returned once."""
    _require_editor(actor, source)
    if source.kind != Kind.WEBHOOK:
        raise DomainError("Only webhook sources have a secret to rotate.", code="not_a_webhook")
    secret = secrets.token_urlsafe(32)
    source.secret = secret
    source.save(update_fields=["secret"])
    return secret


def source_fetch_now(*, actor: User, source: ListeningSource) -> None:
    """Fetch the source as soon as a worker is free, ignoring its back-off."""
    if not can_see(actor, source):
        raise NotFound("No such source.")
    if source.kind not in POLLED_KINDS:
        raise DomainError("Webhook sources push their posts; there is nothing to fetch.", code="not_pollable")
    if source.status == ListeningSource.Status.PAUSED:
        raise DomainError(f"{source.name} is paused; resume it first.", code="source_paused")
    ListeningSource.objects.filter(pk=source.pk).update(next_fetch_at=timezone.now())
    _enqueue_fetch(source.pk)


def _enqueue_fetch(source_id: int) -> None:
    from listening.tasks import source_fetch_task

    transaction.on_commit(lambda: source_fetch_task.delay(source_id))


# --- Fetching -------------------------------------------------------------------------------------------------


def source_lock(source_id: int) -> contextlib.AbstractContextManager[bool]:
    """Session-level advisory lock on one source; yields False when another worker holds it."""
    return advisory_lock(LOCK_NAMESPACE, source_id)


def backoff_seconds(failures: int) -> int:
    """1, 2, 4 … minutes after consecutive failures, never more than LISTENING_FETCH_BACKOFF_MAX."""
    return int(min(settings.LISTENING_FETCH_BACKOFF_MAX, 60 * 2 ** max(0, failures - 1)))


def source_fetch(source_id: int, *, force: bool = False) -> tuple[str, EvaluateResult | None]:
    """Fetch one source once: the posts and the new cursor commit in one transaction. Provider trouble becomes
    source state (failing + back-off; a rate limit waits for the time the provider named). Returns
    (outcome, result): "ok", "more" (a page limit was hit: fetch again soon), "locked", "skipped", "not-due",
    "rate_limited", "failing"."""
    with source_lock(source_id) as got:
        if not got:
            return "locked", None
        source = ListeningSource.objects.select_related("channel_account").filter(pk=source_id).first()
        if source is None or source.status == ListeningSource.Status.PAUSED or source.kind not in POLLED_KINDS:
            return "skipped", None
        now = timezone.now()
        if not force and source.next_fetch_at and source.next_fetch_at > now + dt.timedelta(seconds=5):
            return "not-due", None
        fetch = source_fetcher_for(source.kind)
        if fetch is None:
            _fail(source, f"No fetcher is installed for {source.get_kind_display()} sources.", now)
            return "failing", None
        try:
            page = fetch(source)
        except ChannelRateLimited as exc:
            wait = bounded_countdown(exc.retry_after)
            if source.channel_account_id:
                # The account's other users of this endpoint (the poller, other searches) wait for the reset too.
                channel_account_throttle(
                    account_id=source.channel_account_id, endpoint=exc.endpoint or "search",
                    until=now + dt.timedelta(seconds=wait),
                )  # fmt: skip
            ListeningSource.objects.filter(pk=source.pk).update(
                next_fetch_at=now + dt.timedelta(seconds=wait), last_error=str(exc)[:4000], last_fetched_at=now
            )
            return "rate_limited", None
        except ChannelAuthError as exc:
            _fail(source, f"The connected account was refused: {exc}", now)
            return "failing", None
        except (ConnectorError, OSError) as exc:
            _fail(source, str(exc) or exc.__class__.__name__, now)
            return "failing", None
        warning = str(getattr(page, "warning", "") or "")
        with transaction.atomic():
            result = posts_ingest(source=source, posts=page.posts)
            # The cursor moves only with the posts it covers: a rollback leaves both where they were.
            ListeningSource.objects.filter(pk=source.pk).update(
                cursor=page.cursor, last_fetched_at=now, status=ListeningSource.Status.ACTIVE,
                consecutive_failures=0, last_error=warning[:4000],
                next_fetch_at=now + dt.timedelta(seconds=5 if page.more else source.fetch_interval_s),
            )  # fmt: skip
        return ("more" if page.more else "ok"), result


def _fail(source: ListeningSource, message: str, now: dt.datetime) -> None:
    failures = source.consecutive_failures + 1
    ListeningSource.objects.filter(pk=source.pk).update(
        status=ListeningSource.Status.FAILING, consecutive_failures=failures, last_error=message[:4000],
        last_fetched_at=now, next_fetch_at=now + dt.timedelta(seconds=backoff_seconds(failures)),
    )  # fmt: skip
    log.warning("listening source %s failed (%s in a row): %s", source.pk, failures, message)
