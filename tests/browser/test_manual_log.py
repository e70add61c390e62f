"""Logging a touch from the contact page takes two clicks: "Log a touch", then "Log it"."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from contacts.services import contact_create
from tests.accounts.factories import TeamFactory, UserFactory, membership
from threads.models import Message

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_log_a_call_from_the_contact_page(page, live_server) -> None:  # type: ignore[no-untyped-def]
    rep = membership(UserFactory(username="rep"), TeamFactory(name="Team A"))
    contact = contact_create(actor=rep, first_name="Carla", last_name="Caller")
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("rep")
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{live_server.url}/contacts/{contact.pk}/")
    page.wait_for_load_state("load")

    page.get_by_role("link", name="Log a touch").click()
    expect(page).to_have_title("Log a touch with Carla Caller · Threadline")
    expect(page.get_by_role("radio", name="Phone call")).to_be_checked()
    expect(page.get_by_label("When")).not_to_have_value("")
    page.get_by_label("Subject").fill("Pricing questions")
    page.get_by_label("Notes").fill("Wants a quote for 20 seats.")
    page.get_by_role("button", name="Log it").click()

    expect(page).to_have_title("Carla Caller · Threadline")
    expect(page.get_by_text("Phone call logged with Carla Caller.")).to_be_visible()
    message = Message.objects.get(contact=contact)
    assert (message.channel, message.direction, message.subject, message.created_by_id) == (
        "call", "outbound", "Pricing questions", rep.pk,
    )  # fmt: skip
    assert message.body_text == "Wants a quote for 20 seats." and message.thread.topic == ""


def test_a_meeting_in_the_future_is_refused_with_the_reason(page, live_server) -> None:  # type: ignore[no-untyped-def]
    rep = membership(UserFactory(username="rep"), TeamFactory(name="Team A"))
    contact = contact_create(actor=rep, first_name="Fiona", last_name="Future")
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("rep")
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{live_server.url}/threads-manual/contacts/{contact.pk}/log/")
    page.get_by_role("radio", name="Meeting").check()
    page.get_by_label("When").fill("2099-01-01T10:00")
    page.get_by_role("button", name="Log it").click()
    expect(page.get_by_role("alert")).to_contain_text("Is in the future")
    expect(page.get_by_role("radio", name="Meeting")).to_be_checked()
    assert not Message.objects.filter(contact=contact).exists()
