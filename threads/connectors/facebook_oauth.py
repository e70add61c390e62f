"""Facebook Login for a page account: the provider half of "Connect with Facebook".

Meta's flow: the admin authorizes our app for their pages (``dialog/oauth``), we trade the code for a user token,
trade that for a long-lived one, and read the page's own access token from ``/me/accounts`` (a page token derived
from a long-lived user token does not expire). No model writes here: the view stores the page token through
``channel_account_update``. Every Graph call carries ``appsecret_proof``, as the connector's do.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import requests
from django.conf import settings

from threads.connectors import ChannelAuthError, ChannelUnavailable, ConnectorError
from threads.connectors.facebook import appsecret_proof

SCOPES = (
    "pages_show_list,pages_messaging,pages_read_engagement,pages_manage_engagement,pages_read_user_content,"
    "pages_manage_metadata"
)
TIMEOUT = 15


def configured() -> bool:
    return bool(settings.FACEBOOK_APP_ID and settings.FACEBOOK_APP_SECRET)


def _version() -> str:
    version = settings.FACEBOOK_GRAPH_VERSION
    return version if version.startswith("v") else f"v{version}"


def authorize_url(*, redirect_uri: str, state: str) -> str:
    query = {"client_id": settings.FACEBOOK_APP_ID, "redirect_uri": redirect_uri, "state": state, "scope": SCOPES,
             "response_type": "code"}  # fmt: skip
    return f"https://www.facebook.com/{_version()}/dialog/oauth?{urlencode(query)}"


def _get(path: str, params: dict[str, str]) -> dict[str, Any]:
    try:
        response = requests.get(f"https://graph.facebook.com/{_version()}/{path}", params=params, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise ChannelUnavailable(f"Facebook is unreachable: {exc}") from exc
    if response.status_code >= 500:
        raise ChannelUnavailable(f"Facebook answered {response.status_code}; try again later.")
    try:
        body = response.json()
    except ValueError:
        raise ConnectorError(f"Facebook answered {response.status_code} with no JSON.") from None
    if response.status_code != 200 or "error" in body:
        error = body.get("error") or {}
        raise ChannelAuthError(f"Facebook refused: {error.get('message') or response.reason}")
    return body


def page_token(*, code: str, redirect_uri: str, page_id: str) -> dict[str, Any]:
    """The credentials to store for ``page_id`` after the admin authorized our app: {"page_access_token": …}."""
    app = {"client_id": settings.FACEBOOK_APP_ID, "client_secret": settings.FACEBOOK_APP_SECRET}
    short = _get("oauth/access_token", {**app, "redirect_uri": redirect_uri, "code": code})["access_token"]
    long_lived = _get("oauth/access_token", {**app, "grant_type": "fb_exchange_token", "fb_exchange_token": short})
    user_token = long_lived["access_token"]
    proof = appsecret_proof(user_token, settings.FACEBOOK_APP_SECRET)
    params = {"fields": "id,name,access_token", "access_token": user_token, "appsecret_proof": proof}
    pages = _get("me/accounts", params).get("data") or []
    for page in pages:
        if str(page.get("id")) == page_id and page.get("access_token"):
            return {"page_access_token": page["access_token"], "page_name": page.get("name", "")}
    names = ", ".join(f"{p.get('name')} ({p.get('id')})" for p in pages) or "none"
    raise ChannelAuthError(
        f"The Facebook user who signed in does not manage page {page_id} for this app; pages granted: {names}."
    )
