"""Channel account writes: connect, update, pause, resume, rotate a webhook secret, sync now.

Who may do what:

- anyone may connect a **private** account of their own (their mailbox: its messages' bodies are theirs only);
- only managers and admins may connect a **team-shared** account (a support@ mailbox, a webhook source);
- only the owner or an admin may change, pause, resume or rotate an account; anyone who sees it may sync it now.

Credentials are JSON encrypted at rest and never leave the server again; a webhook secret is returned exactly
once, by the service that generated it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import Team, User, Visibility
from accounts.selectors import can_see, user_team_ids
from contacts.identities import normalize_email, normalize_phone
from crm.errors import DomainError, NotFound
from threads.connectors import ChannelAuthError, ConnectorError, connection_test_for, poller_for
from threads.models import ChannelAccount

Kind = ChannelAccount.Kind
_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{1,63}$")
EMAIL_DEFAULT_PORTS = {"imap_port": 993, "smtp_port": 587}


class NotAccountOwner(DomainError):
    """Seeing an account (a team mailbox) is not the right to change it."""

    code = "not_account_owner"
    status = 403


def _secret() -> str:
    return secrets.token_urlsafe(32)


def _require_visible(actor: User, account: ChannelAccount) -> None:
    if not can_see(actor, account):
        raise NotFound("No such channel account.")


def _require_editor(actor: User, account: ChannelAccount) -> None:
    _require_visible(actor, account)
    if not (actor.is_admin_role or account.owner_id == actor.pk):
        raise NotAccountOwner(f"Only the owner of {account.name} or an admin may change it.")


def channel_account_editable(*, actor: User, account: ChannelAccount) -> None:
    """Raise unless ``actor`` may change ``account`` (before starting a flow that ends in an update)."""
    _require_editor(actor, account)


def _check_sharing(actor: User, visibility: str, team: Team | None) -> None:
    if visibility not in Visibility.values:
        raise DomainError("Choose private or team.", fields={"visibility": ["Invalid choice."]})
    if visibility == Visibility.TEAM:
        if not (actor.is_admin_role or actor.is_manager_role):
            raise DomainError(
                "Only managers and admins may connect a team-shared account; connect it as private instead.",
                fields={"visibility": ["Managers and admins only."]}, code="team_account_not_allowed",
            )  # fmt: skip
        if team is None:
            raise DomainError("Choose the team that shares this account.", fields={"team": ["Required."]})
        if not actor.is_admin_role and team.pk not in user_team_ids(actor):
            raise DomainError("You can only share an account with your own team.", fields={"team": ["Not yours."]})


def _clean_email(address: str, config: dict[str, Any], credentials: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    errors: dict[str, list[str]] = {}
    try:
        address = normalize_email(address)
    except ValidationError:
        errors["address"] = ["The mailbox's own e-mail address is required and must be valid."]
    cleaned = {**EMAIL_DEFAULT_PORTS, **config}
    for host in ("imap_host", "smtp_host"):
        if not str(cleaned.get(host) or "").strip():
            errors[f"config.{host}"] = ["Required."]
        else:
            cleaned[host] = str(cleaned[host]).strip()
    for port in ("imap_port", "smtp_port"):
        try:
            value = int(cleaned[port])
        except (TypeError, ValueError):
            value = 0
        if not 1 <= value <= 65535:
            errors[f"config.{port}"] = ["A port number between 1 and 65535."]
        cleaned[port] = value
    for key in ("username", "password"):
        if not str(credentials.get(key) or ""):
            errors[f"credentials.{key}"] = ["Required."]
    if errors:
        raise DomainError("The mailbox settings are incomplete.", fields=errors, code="invalid_email_account")
    return address, cleaned


def _clean_facebook(config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A page is its numeric id: webhooks find the account by it, and our replies are authored by it (the
    account's address), so a pulled copy of a reply is recognized as ours."""
    page_id = str(config.get("page_id") or "").strip()
    if not page_id.isdigit():
        raise DomainError(
            "A Facebook page needs its numeric page id (Page settings → About → Page ID).",
            fields={"config.page_id": ["The numeric page id (Page settings → About → Page ID)."]},
            code="invalid_page_id",
        )  # fmt: skip
    return page_id, {**config, "page_id": page_id}


def _clean_phone(address: str) -> str:
    """Our SMS number in E.164: inbound webhooks find the account by it, so "0555 …" and "+1 555 …" must agree."""
    try:
        return normalize_phone(address)
    except ValidationError:
        raise DomainError(
            "The SMS number must be a phone number, in international format (+1555…).",
            fields={"address": ["Not a phone number."]},
            code="invalid_phone",
        ) from None


def _clean_slug(slug: str | None, *, exclude_pk: int | None = None) -> str:
    slug = (slug or "").strip().lower()
    if not _SLUG_RE.match(slug):
        raise DomainError(
            "A webhook source needs a slug: 2-64 lower-case letters, digits, '-' or '_'.",
            fields={"slug": ["Invalid slug."]}, code="invalid_slug",
        )  # fmt: skip
    if ChannelAccount.objects.filter(slug=slug).exclude(pk=exclude_pk).exists():
        raise DomainError(f"The slug {slug!r} is taken.", fields={"slug": ["Already in use."]}, code="slug_taken")
    return slug


@transaction.atomic
def channel_account_create(
    *,
    actor: User,
    kind: str,
    name: str,
    visibility: str,
    address: str = "",
    config: dict[str, Any] | None = None,
    credentials: dict[str, Any] | None = None,
    slug: str | None = None,
    unknown_policy: str = ChannelAccount.UnknownPolicy.CREATE_LEAD,
    team: Team | None = None,
) -> ChannelAccount:
    """Connect an account. For a webhook source the generated secret is on ``account.issued_secret``: show it to
    the creator now, it is never shown again (rotate it to get a new one)."""
    if kind not in Kind.values:
        raise DomainError(f"Unknown channel kind {kind!r}.", fields={"kind": ["Invalid choice."]})
    if not name.strip():
        raise DomainError("Give the account a name.", fields={"name": ["Required."]})
    if unknown_policy not in ChannelAccount.UnknownPolicy.values:
        raise DomainError("Unknown policy for unknown senders.", fields={"unknown_policy": ["Invalid choice."]})
    if team is None and visibility == Visibility.TEAM:
        team_ids = user_team_ids(actor)
        team = Team.objects.filter(pk=team_ids[0]).first() if team_ids else None
    _check_sharing(actor, visibility, team)
    config = dict(config or {})
    credentials = dict(credentials or {})
    issued = ""
    if kind == Kind.EMAIL:
        address, config = _clean_email(address, config, credentials)
        slug = None
    elif kind == Kind.SMS:
        address = _clean_phone(address)
        slug = None
    elif kind == Kind.FACEBOOK:
        address, config = _clean_facebook(config)
        slug = None
    elif kind == Kind.WEBHOOK:
        slug = _clean_slug(slug)
        issued = _secret()
        credentials = {"secret": issued}
    else:
        slug = _clean_slug(slug) if slug else None
    if team is None and visibility == Visibility.PRIVATE:
        team_ids = user_team_ids(actor)
        team = Team.objects.filter(pk=team_ids[0]).first() if team_ids else None
    try:
        with transaction.atomic():
            account = ChannelAccount.objects.create(
                kind=kind, name=name.strip()[:120], slug=slug, address=address.strip()[:320], config=config,
                credentials=json.dumps(credentials) if credentials else "", unknown_policy=unknown_policy,
                owner=actor, team=team, visibility=visibility,
            )  # fmt: skip
    except IntegrityError:
        raise DomainError("The slug is taken.", fields={"slug": ["Already in use."]}, code="slug_taken") from None
    missing = {
        Kind.TWITTER: ("access_token", "No access token yet: sign in with X or paste one."),
        Kind.FACEBOOK: ("page_access_token", "No page token yet: connect with Facebook or paste one."),
    }.get(kind)
    if missing and not credentials.get(missing[0]):
        # Connected without a token: it waits for the provider's sign-in (or a pasted token) instead of failing polls.
        ChannelAccount.objects.filter(pk=account.pk).update(
            status=ChannelAccount.Status.NEEDS_REAUTH, last_error=missing[1]
        )
        account.refresh_from_db()
    account.issued_secret = issued  # type: ignore[attr-defined]
    return account


_UPDATABLE = {"name", "address", "config", "credentials", "unknown_policy", "visibility", "slug", "team"}


@transaction.atomic
def channel_account_update(*, account: ChannelAccount, actor: User, **changes: Any) -> ChannelAccount:
    """Change settings. ``credentials`` are merged into the stored ones (send only the password to change it);
    a webhook's secret changes only through :func:`webhook_secret_rotate`."""
    _require_editor(actor, account)
    unknown = set(changes) - _UPDATABLE
    if unknown:
        raise DomainError(f"Cannot change {', '.join(sorted(unknown))}.", fields={k: ["Read-only."] for k in unknown})
    account = ChannelAccount.objects.select_for_update().get(pk=account.pk)
    if "name" in changes:
        if not str(changes["name"]).strip():
            raise DomainError("Give the account a name.", fields={"name": ["Required."]})
        account.name = str(changes["name"]).strip()[:120]
    if "unknown_policy" in changes:
        if changes["unknown_policy"] not in ChannelAccount.UnknownPolicy.values:
            raise DomainError("Unknown policy for unknown senders.", fields={"unknown_policy": ["Invalid choice."]})
        account.unknown_policy = changes["unknown_policy"]
    if "visibility" in changes or "team" in changes:
        visibility = changes.get("visibility", account.visibility)
        team = changes.get("team", account.team)
        if visibility != account.visibility or team != account.team:
            if visibility == Visibility.TEAM:
                _check_sharing(actor, visibility, team)
            account.visibility, account.team = visibility, team
    stored = _credentials(account)
    if "credentials" in changes and account.kind == Kind.WEBHOOK:
        raise DomainError("Rotate the secret to change it.", fields={"credentials": ["Read-only."]})
    credentials = {**stored, **(changes.get("credentials") or {})}
    config = {**account.config, **(changes.get("config") or {})} if "config" in changes else account.config
    address = changes.get("address", account.address)
    if account.kind == Kind.EMAIL:
        address, config = _clean_email(address, config, credentials)
    elif account.kind == Kind.SMS and "address" in changes:
        address = _clean_phone(str(address))
    elif account.kind == Kind.FACEBOOK:
        address, config = _clean_facebook(config)
    if "slug" in changes:
        if account.kind != Kind.WEBHOOK and not changes["slug"]:
            account.slug = None
        else:
            account.slug = _clean_slug(changes["slug"], exclude_pk=account.pk)
    account.address, account.config = str(address)[:320], config
    if credentials != stored:
        account.credentials = json.dumps(credentials)
        if account.status == ChannelAccount.Status.NEEDS_REAUTH:
            # New credentials are the fix a needs-re-auth account waits for: poll again at once.
            account.status, account.consecutive_failures = ChannelAccount.Status.ACTIVE, 0
            account.last_error, account.next_sync_at = "", None
    account.save()
    return account


def channel_account_test(*, account: ChannelAccount, actor: User) -> str:
    """One cheap authenticated call to the provider with the stored credentials. Returns what it saw ("Connected as
    @acme"); raises DomainError saying what is wrong. A refused login marks the account needs-re-auth, a success
    clears that state. Not in a transaction: the provider call must not hold database locks."""
    _require_visible(actor, account)
    test = connection_test_for(account.kind)
    if test is None:
        raise DomainError(f"{account.get_kind_display()} accounts have nothing to test.", code="not_testable")
    try:
        result = test(account)
    except ChannelAuthError as exc:
        ChannelAccount.objects.filter(pk=account.pk).update(
            status=ChannelAccount.Status.NEEDS_REAUTH, last_error=str(exc)[:4000]
        )
        raise DomainError(str(exc), code="auth_refused") from None
    except ConnectorError as exc:
        raise DomainError(str(exc) or exc.__class__.__name__, code="connection_failed") from None
    ChannelAccount.objects.filter(pk=account.pk, status=ChannelAccount.Status.NEEDS_REAUTH).update(
        status=ChannelAccount.Status.ACTIVE, consecutive_failures=0, last_error=""
    )
    return result


def _credentials(account: ChannelAccount) -> dict[str, Any]:
    try:
        data = json.loads(account.credentials or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


@transaction.atomic
def channel_account_pause(*, account: ChannelAccount, actor: User) -> ChannelAccount:
    """Stop polling (and refuse webhook deliveries) until resumed. Nothing stored is touched."""
    _require_editor(actor, account)
    ChannelAccount.objects.filter(pk=account.pk).update(status=ChannelAccount.Status.PAUSED)
    account.refresh_from_db()
    return account


@transaction.atomic
def channel_account_resume(*, account: ChannelAccount, actor: User) -> ChannelAccount:
    """Back to active after a pause or a fix (new password): the failure history is cleared and it is due now."""
    _require_editor(actor, account)
    ChannelAccount.objects.filter(pk=account.pk).update(
        status=ChannelAccount.Status.ACTIVE, consecutive_failures=0, last_error="", next_sync_at=None
    )
    account.refresh_from_db()
    return account


@transaction.atomic
def webhook_secret_rotate(*, account: ChannelAccount, actor: User) -> str:
    """A new secret for a webhook source, effective at once (the old one stops working). Returned once."""
    _require_editor(actor, account)
    if account.kind != Kind.WEBHOOK:
        raise DomainError("Only webhook sources have a secret to rotate.", code="not_a_webhook")
    secret = _secret()
    account.credentials = json.dumps({"secret": secret})
    account.save(update_fields=["credentials"])
    return secret


def channel_account_sync_now(*, account: ChannelAccount, actor: User) -> None:
    """Poll the account as soon as a worker is free, ignoring its back-off."""
    _require_visible(actor, account)
    if poller_for(account.kind) is None:
        raise DomainError(
            f"{account.get_kind_display()} accounts push their messages to us; there is nothing to poll.",
            code="not_pollable",
        )
    if account.status in (ChannelAccount.Status.PAUSED, ChannelAccount.Status.NEEDS_REAUTH):
        raise DomainError(
            f"{account.name} is {account.get_status_display().lower()}; resume it first.", code="account_unavailable"
        )
    from threads.tasks import channel_sync_task

    ChannelAccount.objects.filter(pk=account.pk).update(next_sync_at=timezone.now())
    transaction.on_commit(lambda: channel_sync_task.delay(account.pk))


# --- What the provider tells us (no person acting: a poll, a connection test, a token renewal) ---------------------


@transaction.atomic
def channel_account_identity_set(*, account: ChannelAccount, user_id: str, username: str, address: str = "") -> None:
    """Remember who the account is at the provider. Direction is decided by the numeric id; the handle is shown."""
    locked = ChannelAccount.objects.select_for_update().get(pk=account.pk)
    config = {**(locked.config or {}), "user_id": user_id, "username": username}
    address = address or locked.address
    if config != locked.config or address != locked.address:
        locked.config, locked.address = config, address
        locked.save(update_fields=["config", "address"])
    account.config, account.address = config, address


@transaction.atomic
def channel_account_tokens_store(
    *,
    account: ChannelAccount,
    stale_access_token: str,
    renew: Callable[[dict[str, Any]], dict[str, Any]],
    margin_s: float = 300,
) -> dict[str, Any]:
    """Renew an OAuth token pair once across workers and store it; returns the credentials to use.

    Providers that rotate refresh tokens (X) invalidate the old one the moment a new pair is issued, and a new pair
    that is not stored locks the account out. So the provider is asked while this row is locked: a second worker
    waits, then finds the token the first one stored instead of spending the used refresh token again."""
    locked = ChannelAccount.objects.select_for_update().get(pk=account.pk)
    stored = _credentials(locked)
    expires_at = stored.get("expires_at")
    renewed_elsewhere = stored.get("access_token") and stored.get("access_token") != stale_access_token
    expiring = isinstance(expires_at, int | float) and expires_at - margin_s <= time.time()
    if renewed_elsewhere and not expiring:
        fresh = stored
    else:
        fresh = {**stored, **renew(stored)}
        locked.credentials = json.dumps(fresh)
        locked.save(update_fields=["credentials"])
    account.credentials = json.dumps(fresh)
    return fresh


def channel_account_throttle(*, account_id: int, endpoint: str, until: dt.datetime) -> None:
    """Record a provider's rate limit on one endpoint of the account (``throttle[endpoint]`` = until when), for work
    outside the sync task that uses the same account (a listening search): every user of the endpoint waits."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE threads_channelaccount SET throttle = throttle || jsonb_build_object(%s::text, %s::text) "
            "WHERE id = %s",
            [endpoint or "default", until.isoformat(), account_id],
        )
