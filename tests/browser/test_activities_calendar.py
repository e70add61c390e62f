"""The calendar page (an activity and the feed URL) and My day's touch prompts (Create call)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.services import user_calendar_token_rotate
from activities.models import Activity, TouchPrompt
from tests.accounts.factories import TeamFactory, UserFactory, membership
from tests.contacts.factories import ContactFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _sign_in(page, live_server, username: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="My day", level=1)).to_be_visible()


def test_calendar_shows_activity_and_feed_url(page, live_server) -> None:  # type: ignore[no-untyped-def]
    rep = membership(UserFactory(username="cal"), TeamFactory(name="Cal team"))
    token = user_calendar_token_rotate(user=rep)
    Activity.objects.create(subject="Quarterly review", owner=rep, due_at=timezone.now() + dt.timedelta(hours=1))
    _sign_in(page, live_server, "cal")
    page.goto(f"{live_server.url}/activities/calendar/?view=month")
    expect(page).to_have_title(f"Calendar · {timezone.localdate():%B %Y} · Threadline")
    expect(page.get_by_text("Quarterly review")).to_be_visible()
    expect(page.get_by_label("Subscribe URL")).to_have_value(f"{live_server.url}/activities/ical/{token}.ics")
    # Keyboard: the "Next month" link is reachable and works.
    page.get_by_role("link", name="Next month →").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_text("Quarterly review")).to_have_count(0)
    page.get_by_role("button", name="Revoke and create a new link").click()
    expect(page.get_by_text("The old link no longer works")).to_be_visible()
    rep.refresh_from_db()
    assert rep.calendar_token != token


def test_my_day_prompt_becomes_a_call(page, live_server) -> None:  # type: ignore[no-untyped-def]
    team = TeamFactory(name="Prompt team")
    rep = membership(UserFactory(username="pr"), team)
    contact = ContactFactory(first_name="Olive", last_name="Overdue", owner=rep, team=team)
    prompt = TouchPrompt.objects.create(
        contact=contact, owner=rep, cadence_days=14, last_touch_at=timezone.now() - dt.timedelta(days=31)
    )
    _sign_in(page, live_server, "pr")
    page.wait_for_load_state("load")
    panel = page.get_by_role("region", name="Time to get in touch")
    expect(panel.get_by_text("usually every 14 days, last touch 31 days ago")).to_be_visible()
    panel.get_by_role("button", name="Create call").click()
    expect(page.get_by_text("Call with Olive Overdue added to today.")).to_be_visible()
    expect(panel.get_by_role("link", name="Olive Overdue")).to_have_count(0)
    expect(page.get_by_text("Get in touch with Olive Overdue")).to_be_visible()  # now an activity on My day
    prompt.refresh_from_db()
    assert prompt.status == "done"
    assert Activity.objects.filter(contact=contact, kind="call", owner=rep, status="open").count() == 1
