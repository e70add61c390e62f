"""OAuth 2.0 Authorization Code with PKCE for X (Twitter): the provider half of "Sign in with X".

No model writes here (connectors never write): the view keeps the PKCE verifier in the session and stores the
tokens through ``channel_account_update``. Access tokens last two hours; ``refresh`` trades the refresh token
(scope ``offline.access``) for a new pair, and the Twitter connector calls it when a token has expired.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import requests
from django.conf import settings

from threads.connectors import ChannelAuthError, ChannelUnavailable, ConnectorError

AUTHORIZE_URL = "https://twitter.com/i/oauth2/authorize"
TOKEN_URL = "https://api.twitter.com/2/oauth2/token"  # noqa: S105 - an endpoint, not a secret
SCOPES = "tweet.read tweet.write users.read dm.read dm.write offline.access"
TIMEOUT = 15


def configured() -> bool:
    return bool(settings.TWITTER_CLIENT_ID)


def new_verifier() -> str:
    # RFC 7636: 43 to 128 characters of [A-Z a-z 0-9 - . _ ~]; token_urlsafe gives that alphabet.
    return secrets.token_urlsafe(96)[:128]


def challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorize_url(*, redirect_uri: str, state: str, verifier: str) -> str:
    query = {
        "response_type": "code", "client_id": settings.TWITTER_CLIENT_ID, "redirect_uri": redirect_uri,
        "scope": SCOPES, "state": state, "code_challenge": challenge(verifier), "code_challenge_method": "S256",
    }  # fmt: skip
    return f"{AUTHORIZE_URL}?{urlencode(query)}"


def _token_request(data: dict[str, str]) -> dict[str, Any]:
    auth = (settings.TWITTER_CLIENT_ID, settings.TWITTER_CLIENT_SECRET) if settings.TWITTER_CLIENT_SECRET else None
    try:
        response = requests.post(
            TOKEN_URL, data={**data, "client_id": settings.TWITTER_CLIENT_ID}, auth=auth, timeout=TIMEOUT
        )
    except requests.RequestException as exc:
        raise ChannelUnavailable(f"X's token endpoint is unreachable: {exc}") from exc
    if response.status_code >= 500:
        raise ChannelUnavailable(f"X's token endpoint answered {response.status_code}; try again later.")
    try:
        body = response.json()
    except ValueError:
        raise ConnectorError(f"X's token endpoint answered {response.status_code} with no JSON.") from None
    if response.status_code != 200 or "access_token" not in body:
        detail = body.get("error_description") or body.get("error") or response.reason
        raise ChannelAuthError(f"X refused the authorization ({response.status_code}): {detail}")
    return {
        "access_token": body["access_token"],
        "refresh_token": body.get("refresh_token", data.get("refresh_token", "")),
        "expires_at": int(time.time()) + int(body.get("expires_in") or 7200),
        "scope": body.get("scope", ""),
    }


def exchange_code(*, code: str, redirect_uri: str, verifier: str) -> dict[str, Any]:
    """The credentials to store for an authorization code: access_token, refresh_token, expires_at (epoch)."""
    return _token_request(
        {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier}
    )


def refresh(refresh_token: str) -> dict[str, Any]:
    if not refresh_token:
        raise ChannelAuthError("The X token expired and there is no refresh token: sign in with X again.")
    return _token_request({"grant_type": "refresh_token", "refresh_token": refresh_token})
