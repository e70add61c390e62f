"""The Inbox in a real browser: open a conversation that spans e-mail and a call, reply, see the reply queued;
retry a dead letter from the channel account page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from contacts.services import contact_create
from tests.accounts.factories import TeamFactory, UserFactory, membership
from tests.threads.conversation_helpers import call_with, email_from
from tests.threads.factories import ChannelAccountFactory
from threads.models import Message, RawEvent

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page, live_server) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("rep")
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Sign in").click()


def test_open_a_thread_and_reply(page, live_server) -> None:  # type: ignore[no-untyped-def]
    team = TeamFactory(name="Team A")
    rep = membership(UserFactory(username="rep"), team)
    contact = contact_create(
        actor=rep, first_name="Greta", last_name="Golfer", identities=[{"kind": "email", "value": "greta@example.com"}]
    )
    account = ChannelAccountFactory(owner=rep, team=team, name="Sales mailbox", address="sales@ourco.example")
    email_from(account, "greta@example.com", subject="Tee times", body="Can we play on Friday?", minutes=1)
    call_with(contact, minutes=2, notes="Left a voicemail about Friday")
    sign_in(page, live_server)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Inbox").click()
    expect(page).to_have_title("Inbox · Threadline")
    page.get_by_role("link", name="Greta Golfer").click()
    expect(page).to_have_title("Greta Golfer · Threadline")
    messages = page.locator("#message-list")
    expect(messages.locator(".channel-badge", has_text="E-mail")).to_be_visible()
    expect(messages.locator(".channel-badge", has_text="Phone call")).to_be_visible()
    expect(messages).to_contain_text("Can we play on Friday?")
    expect(messages).to_contain_text("Left a voicemail about Friday")

    expect(page.get_by_label("Subject")).to_have_value("Re: Tee times")
    page.get_by_label("Message", exact=True).fill("Friday at 9 works for me.")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_text("Reply queued for sending through Sales mailbox.")).to_be_visible()
    reply = messages.locator(".message-item").last
    expect(reply).to_contain_text("Friday at 9 works for me.")
    expect(reply.locator(".delivery-badge")).to_have_text("Queued")
    assert Message.objects.get(direction="outbound", channel="email").delivery == "queued"


def test_retry_a_dead_letter_from_the_channel_page(page, live_server) -> None:  # type: ignore[no-untyped-def]
    rep = membership(UserFactory(username="rep"), TeamFactory(name="Team A"))
    account = ChannelAccountFactory(owner=rep, team=rep.memberships.first().team, name="Support mailbox")
    dead = RawEvent.objects.create(
        channel_account=account, provider_event_id="<broken@example.com>", event_type="email", payload=b"garbage",
        status=RawEvent.Status.DEAD, error="NormalizeError: the message has no From header", attempts=1,
    )  # fmt: skip
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/inbox/channels/")
    page.get_by_role("link", name="Support mailbox").click()
    expect(page).to_have_title("Support mailbox · Threadline")
    expect(page.locator("#dead-letters")).to_contain_text("the message has no From header")
    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_text("1 event queued for another try.")).to_be_visible()
    expect(page.locator("#dead-letters")).to_contain_text("No dead letters")
    dead.refresh_from_db()
    assert dead.status == RawEvent.Status.PENDING
