"""Channel set-up pages: connect an account of every kind, re-enter credentials, test the connection, and the
needs-re-auth banner with its fix-it link. Provider calls go through the connection-test registry."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from accounts.models import Visibility
from tests.threads.factories import ChannelAccountFactory
from threads import connectors
from threads.connectors import ChannelAuthError, ChannelUnavailable
from threads.models import ChannelAccount

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake_tests(monkeypatch):  # type: ignore[no-untyped-def]
    """Replace the registered connection tests with scripted answers, restored after the test."""
    answers: dict[str, object] = {}

    def tester(account: ChannelAccount) -> str:
        answer = answers[account.kind]
        if isinstance(answer, Exception):
            raise answer
        return str(answer)

    for kind in ("email", "twitter", "facebook", "sms"):
        monkeypatch.setitem(connectors._CONNECTION_TESTS, kind, tester)
    return answers


def test_connect_page_lists_every_kind(client, world) -> None:
    client.force_login(world.ma)
    page = client.get(reverse("threads:account_connect")).content.decode()
    for kind in ("email", "twitter", "facebook", "sms", "webhook"):
        assert reverse("threads:account_connect_kind", args=[kind]) in page


@pytest.mark.parametrize(
    ("kind", "fields", "expect"),
    [
        ("twitter", {"access_token": "tok-1"}, {"credentials": {"access_token": "tok-1"}}),
        ("facebook", {"page_id": "1122", "page_access_token": "EAAB"}, {"config": {"page_id": "1122"}}),
        ("sms", {"address": "+1 (415) 555-0100", "account_sid": "AC1", "auth_token": "t"}, {"address": "+14155550100"}),
    ],
)
def test_manager_connects_a_team_account(client, world, kind, fields, expect) -> None:
    client.force_login(world.ma)
    data = {"name": f"Our {kind}", "visibility": Visibility.TEAM, "team": world.team_a.pk,
            "unknown_policy": "create_lead", **fields}  # fmt: skip
    response = client.post(reverse("threads:account_connect_kind", args=[kind]), data)
    account = ChannelAccount.objects.get(name=f"Our {kind}")
    assert response.status_code == 302 and response.url == reverse("threads:account_detail", args=[account.pk])
    assert account.kind == kind and account.team == world.team_a and account.owner == world.ma
    creds = json.loads(account.credentials)
    for key, value in expect.get("credentials", {}).items():
        assert creds[key] == value
    for key, value in expect.get("config", {}).items():
        assert account.config[key] == value
    if "address" in expect:
        assert account.address == expect["address"]
    # Secrets never come back to the browser.
    page = client.get(reverse("threads:account_edit", args=[account.pk])).content.decode()
    for value in fields.values():
        if value in ("tok-1", "EAAB", "t"):
            assert f'value="{value}"' not in page


def test_bad_sms_number_is_a_form_error(client, world) -> None:
    client.force_login(world.ma)
    response = client.post(
        reverse("threads:account_connect_kind", args=["sms"]),
        {"name": "SMS", "visibility": Visibility.TEAM, "team": world.team_a.pk, "unknown_policy": "create_lead",
         "address": "not a number", "account_sid": "AC1", "auth_token": "t"},
    )  # fmt: skip
    assert response.status_code == 200
    assert "international format" in response.content.decode()
    assert not ChannelAccount.objects.filter(kind="sms").exists()


def test_rep_cannot_share_an_account_with_the_team(client, world) -> None:
    client.force_login(world.a1)
    response = client.post(
        reverse("threads:account_connect_kind", args=["twitter"]),
        {"name": "X", "visibility": Visibility.TEAM, "team": world.team_a.pk, "unknown_policy": "create_lead",
         "access_token": "tok"},
    )  # fmt: skip
    assert response.status_code == 200 and "Managers and admins only" in response.content.decode()
    assert not ChannelAccount.objects.filter(kind="twitter").exists()


def test_needs_reauth_banner_links_to_the_fix_and_new_credentials_reactivate(client, world) -> None:
    account = ChannelAccountFactory(
        kind="twitter", owner=world.ma, team=world.team_a, address="@ourco", status="needs_reauth",
        last_error="401 Unauthorized: token expired", credentials=json.dumps({"access_token": "old"}),
    )  # fmt: skip
    client.force_login(world.ma)
    page = client.get(reverse("threads:account_detail", args=[account.pk])).content.decode()
    assert 'id="reauth-banner"' in page and "token expired" in page
    assert reverse("threads:account_edit", args=[account.pk]) in page
    response = client.post(
        reverse("threads:account_edit", args=[account.pk]),
        {"name": account.name, "visibility": Visibility.TEAM, "team": world.team_a.pk,
         "unknown_policy": "create_lead", "address": "@ourco", "access_token": "new"},
    )  # fmt: skip
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.status == "active" and account.last_error == ""
    assert json.loads(account.credentials)["access_token"] == "new"


def test_empty_secret_keeps_the_stored_one(client, world) -> None:
    account = ChannelAccountFactory(
        kind="sms", owner=world.ma, team=world.team_a, address="+14155550100",
        credentials=json.dumps({"account_sid": "AC1", "auth_token": "keep-me"}),
    )  # fmt: skip
    client.force_login(world.ma)
    client.post(
        reverse("threads:account_edit", args=[account.pk]),
        {"name": "Renamed", "visibility": Visibility.TEAM, "team": world.team_a.pk, "unknown_policy": "unmatched",
         "address": "+14155550100", "account_sid": "AC1", "auth_token": ""},
    )  # fmt: skip
    account.refresh_from_db()
    assert account.name == "Renamed" and account.unknown_policy == "unmatched"
    assert json.loads(account.credentials)["auth_token"] == "keep-me"


def test_connection_test_success_clears_reauth_and_refusal_sets_it(client, world, fake_tests) -> None:
    account = ChannelAccountFactory(kind="facebook", owner=world.ma, team=world.team_a, status="needs_reauth")
    client.force_login(world.ma)
    url = reverse("threads:account_test", args=[account.pk])
    fake_tests["facebook"] = "Connected to page Our Co (id 1122)"
    page = client.post(url, follow=True).content.decode()
    assert "Connected to page Our Co" in page
    account.refresh_from_db()
    assert account.status == "active"
    fake_tests["facebook"] = ChannelAuthError("Graph API error 190: the page token expired.")
    page = client.post(url, follow=True).content.decode()
    assert "Connection test failed" in page and "token expired" in page
    account.refresh_from_db()
    assert account.status == "needs_reauth"
    fake_tests["facebook"] = ChannelUnavailable("Graph API answered 503.")
    page = client.post(url, follow=True).content.decode()
    assert "503" in page
    account.refresh_from_db()
    assert account.status == "needs_reauth"  # an outage says nothing about the credentials


def test_other_team_cannot_open_or_test_an_account(client, world, fake_tests) -> None:
    account = ChannelAccountFactory(kind="sms", owner=world.ma, team=world.team_a, address="+14155550100")
    client.force_login(world.b1)
    assert client.get(reverse("threads:account_edit", args=[account.pk])).status_code == 404
    assert client.post(reverse("threads:account_test", args=[account.pk])).status_code == 404


def test_rep_who_sees_a_team_account_cannot_edit_it(client, world) -> None:
    account = ChannelAccountFactory(kind="sms", owner=world.ma, team=world.team_a, address="+14155550100")
    client.force_login(world.a1)
    response = client.post(
        reverse("threads:account_edit", args=[account.pk]),
        {"name": "Hijacked", "unknown_policy": "create_lead", "address": "+14155550100", "account_sid": "x"},
    )
    account.refresh_from_db()
    assert account.name != "Hijacked"
    assert response.status_code in (200, 403)


def test_sign_in_with_x_stores_tokens_and_reactivates(client, world, settings) -> None:
    import responses

    settings.TWITTER_CLIENT_ID, settings.TWITTER_CLIENT_SECRET = "client-1", "shh"
    client.force_login(world.ma)
    client.post(
        reverse("threads:account_connect_kind", args=["twitter"]),
        {"name": "Our X", "visibility": Visibility.TEAM, "team": world.team_a.pk, "unknown_policy": "create_lead"},
    )
    account = ChannelAccount.objects.get(name="Our X")
    assert account.status == "needs_reauth"  # no token yet: waiting for the sign-in, not failing polls
    start = client.post(reverse("threads:twitter_oauth_start", args=[account.pk]))
    assert start.status_code == 302 and start.url.startswith("https://twitter.com/i/oauth2/authorize?")
    from urllib.parse import parse_qs, urlparse

    query = parse_qs(urlparse(start.url).query)
    assert query["code_challenge_method"] == ["S256"] and query["client_id"] == ["client-1"]
    assert "offline.access" in query["scope"][0]
    state = query["state"][0]
    with responses.RequestsMock() as rsps:
        rsps.post(
            "https://api.twitter.com/2/oauth2/token",
            json={"token_type": "bearer", "expires_in": 7200, "access_token": "AT-1", "scope": "tweet.read",
                  "refresh_token": "RT-1"},
        )  # fmt: skip
        done = client.get(reverse("threads:twitter_oauth_callback"), {"state": state, "code": "c0de"})
        body = rsps.calls[0].request.body
        assert "code_verifier=" in body and "grant_type=authorization_code" in body
    assert done.status_code == 302
    account.refresh_from_db()
    creds = json.loads(account.credentials)
    assert creds["access_token"] == "AT-1" and creds["refresh_token"] == "RT-1" and creds["expires_at"] > 0
    assert account.status == "active"
    # The state is single-use: replaying the callback stores nothing.
    again = client.get(reverse("threads:twitter_oauth_callback"), {"state": state, "code": "c0de"}, follow=True)
    assert "not one we started" in again.content.decode()


def test_sign_in_with_x_refused_by_x_says_so(client, world, settings) -> None:
    import responses

    settings.TWITTER_CLIENT_ID, settings.TWITTER_CLIENT_SECRET = "client-1", ""
    account = ChannelAccountFactory(kind="twitter", owner=world.ma, team=world.team_a, status="needs_reauth")
    client.force_login(world.ma)
    start = client.post(reverse("threads:twitter_oauth_start", args=[account.pk]))
    state = start.url.split("state=")[1].split("&")[0]
    with responses.RequestsMock() as rsps:
        rsps.post(
            "https://api.twitter.com/2/oauth2/token", status=400,
            json={"error": "invalid_request", "error_description": "The authorization code was invalid."},
        )  # fmt: skip
        page = client.get(
            reverse("threads:twitter_oauth_callback"), {"state": state, "code": "bad"}, follow=True
        ).content.decode()
    assert "Sign in with X failed" in page and "authorization code was invalid" in page
    account.refresh_from_db()
    assert account.status == "needs_reauth"


def test_facebook_page_needs_a_numeric_id_and_is_addressed_by_it(client, world) -> None:
    client.force_login(world.ma)
    url = reverse("threads:account_connect_kind", args=["facebook"])
    base = {"name": "Page", "visibility": Visibility.TEAM, "team": world.team_a.pk, "unknown_policy": "create_lead",
            "page_access_token": "EAAB"}  # fmt: skip
    response = client.post(url, {**base, "page_id": "our-page"})
    assert response.status_code == 200 and "The numeric page id" in response.content.decode()
    client.post(url, {**base, "page_id": " 1122 "})
    account = ChannelAccount.objects.get(kind="facebook")
    assert account.address == "1122" and account.config["page_id"] == "1122"


def test_connect_with_facebook_stores_the_page_token(client, world, settings) -> None:
    import hashlib
    import hmac
    from urllib.parse import parse_qs, urlparse

    import responses

    settings.FACEBOOK_APP_ID, settings.FACEBOOK_APP_SECRET = "app-1", "app-secret"
    settings.FACEBOOK_GRAPH_VERSION = "v23.0"
    client.force_login(world.ma)
    client.post(
        reverse("threads:account_connect_kind", args=["facebook"]),
        {"name": "Our page", "visibility": Visibility.TEAM, "team": world.team_a.pk, "unknown_policy": "create_lead",
         "page_id": "1122"},
    )  # fmt: skip
    account = ChannelAccount.objects.get(name="Our page")
    assert account.status == "needs_reauth"
    start = client.post(reverse("threads:facebook_oauth_start", args=[account.pk]))
    assert start.url.startswith("https://www.facebook.com/v23.0/dialog/oauth?")
    state = parse_qs(urlparse(start.url).query)["state"][0]
    graph = "https://graph.facebook.com/v23.0"
    proof = hmac.new(b"app-secret", b"long-user-token", hashlib.sha256).hexdigest()
    with responses.RequestsMock() as rsps:
        code_exchange = {
            "client_id": "app-1", "client_secret": "app-secret", "code": "c0de",
            "redirect_uri": "http://testserver/inbox/channels/oauth/facebook/callback/",
        }  # fmt: skip
        rsps.get(
            f"{graph}/oauth/access_token", json={"access_token": "short-user-token", "token_type": "bearer"},
            match=[responses.matchers.query_param_matcher(code_exchange)],
        )  # fmt: skip
        rsps.get(f"{graph}/oauth/access_token", json={"access_token": "long-user-token", "expires_in": 5183944})
        rsps.get(
            f"{graph}/me/accounts",
            json={"data": [{"id": "9999", "name": "Other", "access_token": "other"},
                           {"id": "1122", "name": "Our Co", "access_token": "PAGE-TOKEN"}],
                  "paging": {"cursors": {"before": "a", "after": "b"}}},
            match=[responses.matchers.query_param_matcher(
                {"fields": "id,name,access_token", "access_token": "long-user-token", "appsecret_proof": proof})],
        )  # fmt: skip
        done = client.get(reverse("threads:facebook_oauth_callback"), {"state": state, "code": "c0de"})
    assert done.status_code == 302
    account.refresh_from_db()
    assert json.loads(account.credentials)["page_access_token"] == "PAGE-TOKEN"
    assert account.status == "active" and account.config["page_name"] == "Our Co"


def test_connect_with_facebook_for_a_page_the_user_does_not_manage_says_so(client, world, settings) -> None:
    import responses

    settings.FACEBOOK_APP_ID, settings.FACEBOOK_APP_SECRET = "app-1", "app-secret"
    account = ChannelAccountFactory(
        kind="facebook", owner=world.ma, team=world.team_a, address="1122", config={"page_id": "1122"},
        status="needs_reauth",
    )  # fmt: skip
    client.force_login(world.ma)
    start = client.post(reverse("threads:facebook_oauth_start", args=[account.pk]))
    state = start.url.split("state=")[1].split("&")[0]
    with responses.RequestsMock() as rsps:
        rsps.get("https://graph.facebook.com/v23.0/oauth/access_token", json={"access_token": "t"})
        rsps.get("https://graph.facebook.com/v23.0/oauth/access_token", json={"access_token": "t2"})
        rsps.get("https://graph.facebook.com/v23.0/me/accounts", json={"data": [{"id": "9", "name": "Other"}]})
        page = client.get(
            reverse("threads:facebook_oauth_callback"), {"state": state, "code": "c"}, follow=True
        ).content.decode()
    assert "does not manage page 1122" in page
    account.refresh_from_db()
    assert account.status == "needs_reauth"
