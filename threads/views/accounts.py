"""Browser pages of connected channel accounts: their health, dead letters, retry, sync now, pause and resume."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from crm.errors import DomainError
from threads import selectors
from threads.connectors import facebook_oauth, twitter_oauth
from threads.models import RawEvent
from threads.selectors import channels as channel_selectors
from threads.services.channel_accounts import channel_account_pause, channel_account_resume, channel_account_sync_now
from threads.services.pipeline import raw_events_retry


@login_required
def account_list(request: HttpRequest) -> HttpResponse:
    accounts = list(channel_selectors.channel_account_list(user=request.user))
    return render(request, "threads/account_list.html", {"accounts": accounts, "page_title": "Channels"})


@login_required
def account_detail(request: HttpRequest, pk: int) -> HttpResponse:
    account = channel_selectors.channel_account_get(user=request.user, pk=pk)
    dead = selectors.account_dead_letters(account)
    return render(
        request,
        "threads/account_detail.html",
        {
            "account": account, "dead_letters": dead,
            "x_oauth": twitter_oauth.configured(), "fb_oauth": facebook_oauth.configured(),
            "can_edit": request.user.is_admin_role or account.owner_id == request.user.pk,
            "page_title": account.name,
        },
    )  # fmt: skip


@login_required
@require_POST
def account_retry(request: HttpRequest, pk: int) -> HttpResponse:
    """Put dead letters back in the queue: the ticked ones, or every one of the account when none is ticked."""
    account = channel_selectors.channel_account_get(user=request.user, pk=pk)
    ids = [int(v) for v in request.POST.getlist("event") if v.isdigit()]
    dead = RawEvent.objects.filter(channel_account=account, status=RawEvent.Status.DEAD)
    if ids:
        dead = dead.filter(pk__in=ids)
    count = raw_events_retry(raw_event_ids=list(dead.values_list("pk", flat=True)))
    if count:
        messages.success(request, f"{count} event{'s' if count != 1 else ''} queued for another try.")
    else:
        messages.info(request, "Nothing to retry: those events are no longer dead letters.")
    return redirect("threads:account_detail", pk=account.pk)


def _account_action(request: HttpRequest, pk: int, action, done: str) -> HttpResponse:  # type: ignore[no-untyped-def]
    account = channel_selectors.channel_account_get(user=request.user, pk=pk)
    try:
        action(account=account, actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done.format(name=account.name))
    return redirect("threads:account_detail", pk=account.pk)


@login_required
@require_POST
def account_sync(request: HttpRequest, pk: int) -> HttpResponse:
    return _account_action(request, pk, channel_account_sync_now, "{name} will sync in a moment.")


@login_required
@require_POST
def account_pause(request: HttpRequest, pk: int) -> HttpResponse:
    return _account_action(request, pk, channel_account_pause, "{name} is paused.")


@login_required
@require_POST
def account_resume(request: HttpRequest, pk: int) -> HttpResponse:
    return _account_action(request, pk, channel_account_resume, "{name} is active again.")
