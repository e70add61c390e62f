""" "Sign in with X" for a Twitter/X channel account: redirect to X with a PKCE challenge, come back with a code,
store the tokens on the account. The verifier and the account wait in the session under the random ``state``,
so a forged or replayed callback finds nothing."""

from __future__ import annotations

import secrets

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from crm.errors import DomainError
from threads.connectors import ConnectorError, facebook_oauth, twitter_oauth
from threads.models import ChannelAccount
from threads.selectors import channels as channel_selectors
from threads.services.channel_accounts import channel_account_editable, channel_account_update


def _callback_uri(request: HttpRequest, provider: str) -> str:
    return request.build_absolute_uri(reverse(f"threads:{provider}_oauth_callback"))


def _begin(
    request: HttpRequest, pk: int, *, kind: str, configured: bool, unconfigured: str, prefix: str, **pending: str
) -> str | HttpResponse:
    """Check the account may start a provider sign-in; park ``pending`` in the session under a fresh random state
    and return the state (or the redirect that says why not)."""
    account = channel_selectors.channel_account_get(user=request.user, pk=pk)
    if account.kind != kind or not configured:
        messages.error(request, unconfigured)
        return redirect("threads:account_detail", pk=account.pk)
    try:
        channel_account_editable(actor=request.user, account=account)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("threads:account_detail", pk=account.pk)
    state = secrets.token_urlsafe(32)
    request.session[prefix + state] = {"account": account.pk, **pending}
    return state


def _returned(request: HttpRequest, *, prefix: str, refused: str) -> tuple[ChannelAccount, dict] | HttpResponse:
    """The account and parked data of a provider's callback (single use), or the redirect that says what failed."""
    pending = request.session.pop(prefix + request.GET.get("state", ""), None)
    if not pending:
        messages.error(request, "That sign-in link is not one we started (or it was already used). Try again.")
        return redirect("threads:accounts")
    account = channel_selectors.channel_account_get(user=request.user, pk=pending["account"])
    if request.GET.get("error") or not request.GET.get("code"):
        reason = request.GET.get("error_description") or request.GET.get("error") or "no code returned"
        messages.error(request, f"{refused}: {reason}.")
        return redirect("threads:account_detail", pk=account.pk)
    return account, pending


# --- Sign in with X ---------------------------------------------------------------------------------------------

_X_PREFIX = "x_oauth:"


@login_required
@require_POST
def twitter_oauth_start(request: HttpRequest, pk: int) -> HttpResponse:
    verifier = twitter_oauth.new_verifier()
    state = _begin(
        request, pk, kind=ChannelAccount.Kind.TWITTER, configured=twitter_oauth.configured(),
        unconfigured="Sign in with X is not set up on this server (TWITTER_CLIENT_ID); paste a token.",
        prefix=_X_PREFIX, verifier=verifier,
    )  # fmt: skip
    if isinstance(state, HttpResponse):
        return state
    callback = _callback_uri(request, "twitter")
    return redirect(twitter_oauth.authorize_url(redirect_uri=callback, state=state, verifier=verifier))


@login_required
def twitter_oauth_callback(request: HttpRequest) -> HttpResponse:
    returned = _returned(request, prefix=_X_PREFIX, refused="X did not authorize the account")
    if isinstance(returned, HttpResponse):
        return returned
    account, pending = returned
    try:
        tokens = twitter_oauth.exchange_code(
            code=request.GET["code"], redirect_uri=_callback_uri(request, "twitter"), verifier=pending["verifier"]
        )
        channel_account_update(account=account, actor=request.user, credentials=tokens)
    except (ConnectorError, DomainError) as exc:
        messages.error(request, f"Sign in with X failed: {getattr(exc, 'message', str(exc))}")
    else:
        messages.success(request, f"{account.name} is authorized. Test the connection to fetch its handle.")
    return redirect("threads:account_detail", pk=account.pk)


# --- Connect with Facebook ------------------------------------------------------------------------------------

_FB_PREFIX = "fb_oauth:"


@login_required
@require_POST
def facebook_oauth_start(request: HttpRequest, pk: int) -> HttpResponse:
    state = _begin(
        request, pk, kind=ChannelAccount.Kind.FACEBOOK, configured=facebook_oauth.configured(),
        unconfigured="Connect with Facebook needs FACEBOOK_APP_ID and FACEBOOK_APP_SECRET; paste a token.",
        prefix=_FB_PREFIX,
    )  # fmt: skip
    if isinstance(state, HttpResponse):
        return state
    return redirect(facebook_oauth.authorize_url(redirect_uri=_callback_uri(request, "facebook"), state=state))


@login_required
def facebook_oauth_callback(request: HttpRequest) -> HttpResponse:
    returned = _returned(request, prefix=_FB_PREFIX, refused="Facebook did not authorize the page")
    if isinstance(returned, HttpResponse):
        return returned
    account, _ = returned
    try:
        found = facebook_oauth.page_token(
            code=request.GET["code"], page_id=str(account.config.get("page_id") or ""),
            redirect_uri=_callback_uri(request, "facebook"),
        )  # fmt: skip
        channel_account_update(
            account=account, actor=request.user, credentials={"page_access_token": found["page_access_token"]},
            config={"page_name": found["page_name"]} if found["page_name"] else {},
        )  # fmt: skip
    except (ConnectorError, DomainError) as exc:
        messages.error(request, f"Connect with Facebook failed: {getattr(exc, 'message', str(exc))}")
    else:
        messages.success(request, f"{account.name} is connected to its page. Test the connection to check it.")
    return redirect("threads:account_detail", pk=account.pk)
