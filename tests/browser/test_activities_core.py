"""The rep flow: My day shows what is due, one click completes it, and the contact's thread (and timeline) shows it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from activities.services import activity_create
from contacts.services import contact_create
from tests.accounts.factories import TeamFactory, UserFactory, membership

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_my_day_complete_then_thread_shows_it(page, live_server) -> None:  # type: ignore[no-untyped-def]
    rep = membership(UserFactory(username="rep"), TeamFactory(name="Team A"))
    contact = contact_create(actor=rep, first_name="Greta", last_name="Golfer")
    activity_create(
        actor=rep, subject="Golf outing with Greta", kind="in_person", contact=contact,
        due_at=timezone.now() - dt.timedelta(hours=2),
    )  # fmt: skip
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("rep")
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Sign in").click()

    panel = page.locator(".panel-activities")
    expect(panel.get_by_text("Overdue (1)")).to_be_visible()
    row = panel.get_by_role("row").filter(has_text="Golf outing with Greta")
    page.wait_for_load_state("load")  # htmx binds the Done button
    row.get_by_role("button", name="Done").click()
    expect(panel.get_by_role("row").filter(has_text="Golf outing with Greta")).to_contain_text("Done")

    panel.get_by_role("link", name="Greta Golfer").click()
    expect(page).to_have_title("Greta Golfer · Threadline")
    expect(page.locator("#timeline")).to_contain_text("In person: Golf outing with Greta")

    # The completed golf outing is a message in Greta's conversation thread, with its channel badge.
    page.get_by_role("link", name="Conversation").click()
    message = page.locator("li.message-item").filter(has_text="Golf outing with Greta")
    expect(message).to_be_visible()
    expect(message.locator(".channel-badge")).to_have_text("In person")


def test_schedule_an_activity_from_the_contact_page(page, live_server) -> None:  # type: ignore[no-untyped-def]
    rep = membership(UserFactory(username="rep"), TeamFactory(name="Team A"))
    contact = contact_create(actor=rep, first_name="Otto", last_name="Outreach")
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("rep")
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{live_server.url}/contacts/{contact.pk}/")
    page.get_by_role("link", name="Schedule activity").click()
    expect(page).to_have_title("New activity · Threadline")
    page.get_by_label("Kind").select_option("meeting")
    page.get_by_label("Subject").fill("Quarterly review")
    page.get_by_role("button", name="Schedule").click()
    expect(page.get_by_text("Meeting “Quarterly review” scheduled.")).to_be_visible()
    page.goto(f"{live_server.url}/activities/")
    expect(page.get_by_role("link", name="Meeting: Quarterly review")).to_be_visible()
