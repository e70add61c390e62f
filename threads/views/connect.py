"""Connecting a channel account from the browser: pick a kind, paste its credentials, test the connection, fix
it when it needs re-authentication. One form serves every kind: ``KIND_FIELDS`` says which inputs a kind has and
where each value goes (the account's address, its config, or its encrypted credentials)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.models import Team, Visibility
from accounts.selectors import team_list
from crm.errors import DomainError
from crm.forms import add_service_errors
from threads.models import ChannelAccount
from threads.selectors import channels as channel_selectors
from threads.services.channel_accounts import (
    channel_account_create,
    channel_account_test,
    channel_account_update,
)

Kind = ChannelAccount.Kind


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: str
    target: str  # "address", "config" or "credentials"
    required: bool = True
    secret: bool = False
    help: str = ""
    initial: Any = None
    integer: bool = False


KIND_FIELDS: dict[str, list[FieldSpec]] = {
    Kind.EMAIL: [
        FieldSpec("address", "Mailbox address", "address", help="The mailbox's own e-mail address."),
        FieldSpec("imap_host", "IMAP server", "config"),
        FieldSpec("imap_port", "IMAP port", "config", initial=993, integer=True),
        FieldSpec("smtp_host", "SMTP server", "config"),
        FieldSpec("smtp_port", "SMTP port", "config", initial=587, integer=True),
        FieldSpec("username", "User name", "credentials"),
        FieldSpec("password", "Password", "credentials", secret=True, help="Stored encrypted."),
    ],
    Kind.TWITTER: [
        FieldSpec("address", "Handle", "address", required=False, help="Filled in by the connection test."),
        FieldSpec(
            "access_token", "OAuth 2.0 user access token", "credentials", required=False, secret=True,
            help="A user-context token (scopes tweet.read tweet.write users.read dm.read dm.write "
            "offline.access). Leave it empty to use “Sign in with X” on the next page instead.",
        ),
        FieldSpec("refresh_token", "Refresh token", "credentials", required=False, secret=True),
    ],
    Kind.FACEBOOK: [
        FieldSpec("page_id", "Page id", "config", help="The numeric id of the Facebook page."),
        FieldSpec(
            "page_access_token", "Page access token", "credentials", required=False, secret=True,
            help="A long-lived page token with pages_messaging, pages_read_engagement and "
            "pages_manage_engagement. Leave it empty to use “Connect with Facebook” on the next page instead.",
        ),
        FieldSpec(
            "app_secret", "App secret", "credentials", required=False, secret=True,
            help="Only when this page uses another Meta app than the server's FACEBOOK_APP_SECRET.",
        ),
    ],
    Kind.SMS: [
        FieldSpec("address", "Our number", "address", help="The Twilio number in international format, +1555…"),
        FieldSpec("account_sid", "Account SID", "credentials"),
        FieldSpec("auth_token", "Auth token", "credentials", secret=True, help="Also checks webhook signatures."),
        FieldSpec("api_key_sid", "API key SID", "credentials", required=False, help="Optional: REST calls use it."),
        FieldSpec("api_key_secret", "API key secret", "credentials", required=False, secret=True),
        FieldSpec(
            "messaging_service_sid", "Messaging Service SID", "config", required=False,
            help="Optional: send through a Messaging Service instead of the number.",
        ),
    ],
    Kind.WEBHOOK: [
        FieldSpec("slug", "Source slug", "slug", help="Names the source in its URL: /api/v1/inbound/<slug>/."),
    ],
}  # fmt: skip


class ConnectForm(forms.Form):
    name = forms.CharField(max_length=120)
    visibility = forms.ChoiceField(choices=Visibility.choices, initial=Visibility.TEAM)
    team = forms.ModelChoiceField(queryset=Team.objects.none(), required=False)
    unknown_policy = forms.ChoiceField(
        choices=ChannelAccount.UnknownPolicy.choices, label="Messages from unknown people",
        initial=ChannelAccount.UnknownPolicy.CREATE_LEAD,
    )  # fmt: skip

    def __init__(self, *args: Any, kind: str, actor: Any, editing: ChannelAccount | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.kind = kind
        self.editing = editing
        self.fields["team"].queryset = team_list(actor=actor)
        for spec in KIND_FIELDS[kind]:
            # When editing, secrets are never shown; an empty secret field keeps the stored one.
            required = spec.required and not (editing and spec.secret)
            if spec.integer:
                field: forms.Field = forms.IntegerField(min_value=1, max_value=65535, required=required)
            else:
                widget = forms.PasswordInput(render_value=False) if spec.secret else forms.TextInput()
                field = forms.CharField(max_length=2000, required=required, widget=widget, strip=True)
            field.label, field.help_text, field.initial = spec.label, spec.help, spec.initial
            self.fields[spec.name] = field
        if editing is not None:
            self.fields["visibility"].required = False
            for spec in KIND_FIELDS[kind]:
                if spec.secret:
                    continue
                if spec.target == "address":
                    self.initial.setdefault(spec.name, editing.address)
                elif spec.target == "config":
                    self.initial.setdefault(spec.name, editing.config.get(spec.name))
                elif spec.target == "slug":
                    self.initial.setdefault(spec.name, editing.slug)

    def split(self) -> dict[str, Any]:
        """The cleaned values as channel_account_create/update arguments."""
        data = self.cleaned_data
        out: dict[str, Any] = {"config": {}, "credentials": {}}
        for spec in KIND_FIELDS[self.kind]:
            value = data.get(spec.name)
            if spec.target in ("config", "credentials"):
                if value in (None, "") and (spec.secret or not spec.required):
                    continue  # an empty secret keeps the stored one
                out[spec.target][spec.name] = value
            elif spec.target == "address":
                out["address"] = value or ""
            elif spec.target == "slug":
                out["slug"] = value
        return out


def _apply_errors(form: forms.Form, exc: DomainError) -> None:
    # The service names settings by where they are stored ("config.imap_host"); the form by their own name.
    add_service_errors(form, exc, aliases={key: key.rsplit(".", 1)[-1] for key in exc.fields})


@login_required
def account_connect(request: HttpRequest, kind: str = "") -> HttpResponse:
    if not kind:
        kinds = [(k, ChannelAccount.Kind(k).label) for k in KIND_FIELDS]
        return render(request, "threads/account_connect.html", {"kinds": kinds, "page_title": "Connect a channel"})
    if kind not in KIND_FIELDS:
        raise Http404("No such channel kind.")
    form = ConnectForm(request.POST or None, kind=kind, actor=request.user)
    if request.method == "POST" and form.is_valid():
        parts = form.split()
        try:
            account = channel_account_create(
                actor=request.user, kind=kind, name=form.cleaned_data["name"],
                visibility=form.cleaned_data["visibility"], team=form.cleaned_data["team"],
                unknown_policy=form.cleaned_data["unknown_policy"], address=parts.get("address", ""),
                config=parts["config"], credentials=parts["credentials"], slug=parts.get("slug"),
            )  # fmt: skip
        except DomainError as exc:
            _apply_errors(form, exc)
        else:
            issued = getattr(account, "issued_secret", "")
            if issued:
                messages.warning(request, f"Webhook secret (shown once, copy it now): {issued}")
            messages.success(request, f"{account.name} is connected. Test the connection to check the credentials.")
            return redirect("threads:account_detail", pk=account.pk)
    return render(
        request, "threads/account_form.html",
        {"form": form, "kind": kind, "kind_label": ChannelAccount.Kind(kind).label,
         "page_title": f"Connect {ChannelAccount.Kind(kind).label}"},
    )  # fmt: skip


@login_required
def account_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Change settings or re-enter credentials (the fix-it page of a needs-re-auth banner). Saving new credentials
    of an account that needed re-authentication makes it active again."""
    account = channel_selectors.channel_account_get(user=request.user, pk=pk)
    form = ConnectForm(
        request.POST or None, kind=account.kind, actor=request.user, editing=account,
        initial={"name": account.name, "visibility": account.visibility, "team": account.team,
                 "unknown_policy": account.unknown_policy},
    )  # fmt: skip
    if request.method == "POST" and form.is_valid():
        parts = form.split()
        changes: dict[str, Any] = {
            "name": form.cleaned_data["name"], "unknown_policy": form.cleaned_data["unknown_policy"],
            "config": parts["config"],
        }  # fmt: skip
        if form.cleaned_data.get("visibility"):
            changes["visibility"] = form.cleaned_data["visibility"]
            changes["team"] = form.cleaned_data["team"]
        if parts["credentials"] and account.kind != Kind.WEBHOOK:
            changes["credentials"] = parts["credentials"]
        if "address" in parts:
            changes["address"] = parts["address"] or account.address
        if "slug" in parts:
            changes["slug"] = parts["slug"]
        try:
            account = channel_account_update(account=account, actor=request.user, **changes)
        except DomainError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(request, f"{account.name} is saved.")
            return redirect("threads:account_detail", pk=account.pk)
    return render(
        request, "threads/account_form.html",
        {"form": form, "kind": account.kind, "kind_label": account.get_kind_display(), "account": account,
         "page_title": f"Settings of {account.name}"},
    )  # fmt: skip


@login_required
@require_POST
def account_test(request: HttpRequest, pk: int) -> HttpResponse:
    account = channel_selectors.channel_account_get(user=request.user, pk=pk)
    try:
        result = channel_account_test(account=account, actor=request.user)
    except DomainError as exc:
        messages.error(request, f"Connection test failed: {exc.message}")
    else:
        messages.success(request, result)
    return redirect("threads:account_detail", pk=account.pk)
