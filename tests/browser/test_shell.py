"""The browser shell: sign in, see My day and the navigation, sign out; a locked-out user sees why."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.models import User
from tests.accounts.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NAV = ["My day", "Inbox", "Contacts", "Companies", "Activities", "Deals", "Campaigns", "Listening", "Reports"]


def _sign_in(page, live_server, username: str, password: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server.url}/accounts/login/")
    expect(page).to_have_title("Sign in · Threadline")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_see_my_day_sign_out(page, live_server) -> None:  # type: ignore[no-untyped-def]
    UserFactory(username="jane", first_name="Jane")
    _sign_in(page, live_server, "jane", "correct-horse-battery")
    expect(page.get_by_role("heading", name="My day", level=1)).to_be_visible()
    nav = page.get_by_role("navigation", name="Main")
    for label in NAV:
        expect(nav.get_by_role("link", name=label, exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Admin", exact=True)).to_have_count(0)  # reps get no admin link
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_title("Sign in · Threadline")
    expect(page.get_by_text("You have signed out.")).to_be_visible()
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/")


def test_admin_sees_admin_link_and_static_files_are_ours(page, live_server) -> None:  # type: ignore[no-untyped-def]
    UserFactory(username="boss", role=User.Role.ADMIN)
    _sign_in(page, live_server, "boss", "correct-horse-battery")
    expect(page.get_by_role("link", name="Admin", exact=True)).to_be_visible()
    # htmx is a deferred script served from /static/ (the page fixture aborts any off-machine request).
    page.wait_for_function("typeof window.htmx === 'object'")


def test_wrong_password_then_lockout(page, live_server, settings) -> None:  # type: ignore[no-untyped-def]
    UserFactory(username="jane")
    _sign_in(page, live_server, "jane", "wrong")
    expect(page.get_by_role("alert")).to_contain_text("Please enter a correct username and password")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _sign_in(page, live_server, "jane", "wrong")
    expect(page.get_by_role("heading", name="Sign-in temporarily locked")).to_be_visible()
