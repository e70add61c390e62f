"""Listening sources: their health (status, last fetch, last error), creating, editing, fetching now, rotating a
webhook's secret and deleting.

A webhook source's secret is shown once, on the page that answers its creation (or its rotation); it is never
rendered again, and never passes through a session or a URL."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.selectors import team_list
from crm.errors import DomainError
from crm.forms import add_service_errors
from listening import selectors, services
from listening.forms import SourceForm
from listening.models import ListeningSource
from threads.models import ChannelAccount
from threads.selectors.channels import channel_account_list

SERVICE_ALIASES = {
    "channel_account_id": "channel_account",
    "team_id": "team",
    "fetch_interval_s": "fetch_interval_minutes",
}
SIGNATURE_HEADER = "X-Threadline-Signature"


def webhook_url(request: HttpRequest, source: ListeningSource) -> str:
    return request.build_absolute_uri(reverse("listening_webhook", kwargs={"slug": source.slug}))


def _form(request: HttpRequest, *, instance: ListeningSource | None = None, read_only: bool = False) -> SourceForm:
    accounts = list(
        channel_account_list(user=request.user).filter(
            kind__in=[ChannelAccount.Kind.TWITTER, ChannelAccount.Kind.FACEBOOK]
        )
    )
    kwargs = {}
    if instance is None and request.method == "GET" and request.GET.get("kind") in ListeningSource.Kind.values:
        kwargs["initial"] = {"kind": request.GET["kind"]}
    form = SourceForm(
        request.POST if request.method == "POST" else None, accounts=accounts,
        teams=list(team_list(actor=request.user)), instance=instance, **kwargs,
    )  # fmt: skip
    if read_only:
        for field in form.fields.values():
            field.disabled = True
    return form


def _secret_page(request: HttpRequest, source: ListeningSource, secret: str) -> HttpResponse:
    context = {
        "source": source, "secret": secret, "webhook_url": webhook_url(request, source),
        "signature_header": SIGNATURE_HEADER, "page_title": source.name, "tab": "sources",
    }  # fmt: skip
    return render(request, "listening/source_secret.html", context)


@login_required
def source_list(request: HttpRequest) -> HttpResponse:
    sources = list(selectors.source_list(user=request.user).select_related("owner", "team", "channel_account"))
    rows = [{"source": s, "webhook_url": webhook_url(request, s) if s.kind == "webhook" else ""} for s in sources]
    return render(
        request, "listening/source_list.html", {"rows": rows, "page_title": "Listening sources", "tab": "sources"}
    )


@login_required
def source_create(request: HttpRequest) -> HttpResponse:
    form = _form(request)
    if request.method == "POST":
        if form.is_valid():
            try:
                source = services.source_create(actor=request.user, data=form.service_data())
            except DomainError as exc:
                add_service_errors(form, exc, aliases=SERVICE_ALIASES)
            else:
                if source.kind == ListeningSource.Kind.WEBHOOK:
                    messages.success(request, f"Source “{source.name}” created. Copy its secret now.")
                    return _secret_page(request, source, getattr(source, "issued_secret", "") or source.secret)
                messages.success(request, f"Source “{source.name}” created; its first fetch is queued.")
                return redirect("listening:sources")
        messages.error(request, "The source was not saved; see the form.")
        return _render_form(request, form, source=None, can_edit=True, status=400)
    return _render_form(request, form, source=None, can_edit=True)


@login_required
def source_edit(request: HttpRequest, pk: int) -> HttpResponse:
    source = selectors.source_get(user=request.user, pk=pk)
    can_edit = selectors.source_can_edit(user=request.user, source=source)
    if request.method == "POST":
        if not can_edit:
            messages.error(request, "Only the source's owner, their manager or an admin can change it.")
            return redirect("listening:source_edit", pk=source.pk)
        form = _form(request, instance=source)
        if form.is_valid():
            try:
                source = services.source_update(actor=request.user, source=source, data=form.service_data())
            except DomainError as exc:
                add_service_errors(form, exc, aliases=SERVICE_ALIASES)
            else:
                messages.success(request, f"Source “{source.name}” saved.")
                return redirect("listening:sources")
        messages.error(request, "The source was not saved; see the form.")
        return _render_form(request, form, source=source, can_edit=True, status=400)
    return _render_form(
        request, _form(request, instance=source, read_only=not can_edit), source=source, can_edit=can_edit
    )


@login_required
@require_POST
def source_fetch_now(request: HttpRequest, pk: int) -> HttpResponse:
    source = selectors.source_get(user=request.user, pk=pk)
    try:
        services.source_fetch_now(actor=request.user, source=source)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{source.name} will be fetched as soon as a worker is free.")
    return redirect("listening:sources")


@login_required
@require_POST
def source_rotate_secret(request: HttpRequest, pk: int) -> HttpResponse:
    source = selectors.source_get(user=request.user, pk=pk)
    try:
        secret = services.source_secret_rotate(actor=request.user, source=source)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("listening:source_edit", pk=source.pk)
    messages.success(request, f"{source.name} has a new secret; the old one no longer works.")
    return _secret_page(request, source, secret)


@login_required
def source_delete(request: HttpRequest, pk: int) -> HttpResponse:
    source = selectors.source_get(user=request.user, pk=pk)
    if not selectors.source_can_edit(user=request.user, source=source):
        messages.error(request, "Only the source's owner, their manager or an admin can delete it.")
        return redirect("listening:source_edit", pk=source.pk)
    if request.method == "POST":
        name = source.name
        try:
            services.source_delete(actor=request.user, source=source)
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect("listening:source_edit", pk=pk)
        messages.success(request, f"Source “{name}” deleted, with its posts and their mentions.")
        return redirect("listening:sources")
    context = {
        "source": source, "post_count": source.posts.count(), "page_title": f"Delete {source.name}",
        "tab": "sources",
    }  # fmt: skip
    return render(request, "listening/source_delete.html", context)


def _render_form(  # type: ignore[no-untyped-def]
    request: HttpRequest, form: SourceForm, *, source: ListeningSource | None, can_edit: bool, status: int = 200
):
    context = {
        "form": form, "source": source, "can_edit": can_edit, "tab": "sources",
        "page_title": source.name if source else "New listening source",
        "webhook_url": webhook_url(request, source) if source and source.kind == "webhook" else "",
        "signature_header": SIGNATURE_HEADER,
    }  # fmt: skip
    return render(request, "listening/source_form.html", context, status=status)
