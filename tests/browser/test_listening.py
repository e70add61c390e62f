"""Listening in a real browser: write a rule and watch its live dry run (a stored message that matches appears
highlighted; a typo shows where the query breaks), save it, let a matching message arrive, and see the alert in the
notification area and the mention in the feed; the charts draw."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from accounts.models import Notification
from contacts.services import contact_create
from listening.models import ListeningRule, Mention
from listening.services import engine_reset
from listening.tasks import mentions_evaluate_messages_task
from tests.accounts.factories import TeamFactory, UserFactory, membership
from tests.threads.conversation_helpers import call_with, email_from
from tests.threads.factories import ChannelAccountFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _fresh_engine() -> Iterator[None]:
    """The compiled engine is cached per process by rule-set version; a flushed database restarts the version, so
    an engine another test compiled must not be taken for this test's."""
    engine_reset()
    yield
    engine_reset()


def sign_in(page, live_server) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("rep")
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Sign in").click()


def test_write_a_rule_preview_it_save_it_and_see_the_alert(page, live_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    evaluated: list[int] = []

    def worker(args: tuple[list[int]], **options: object) -> None:
        """Stands in for the Celery worker: runs the task the messages_ingested receiver enqueued, right away."""
        evaluated.extend(args[0])
        mentions_evaluate_messages_task(*args)

    monkeypatch.setattr(mentions_evaluate_messages_task, "apply_async", worker)
    team = TeamFactory(name="Team A")
    rep = membership(UserFactory(username="rep"), team)
    contact = contact_create(
        actor=rep, first_name="Greta", last_name="Golfer", identities=[{"kind": "email", "value": "greta@example.com"}]
    )
    account = ChannelAccountFactory(owner=rep, team=team, name="Sales mailbox", address="sales@ourco.example")
    email_from(account, "greta@example.com", subject="Contract", body="We might switch to Globex <next> year.")
    email_from(account, "greta@example.com", subject="Lunch", body="Lunch on Friday?", minutes=1)
    sign_in(page, live_server)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Listening").click()
    expect(page).to_have_title("Listening · Threadline")
    page.get_by_role("link", name="New rule").click()
    expect(page).to_have_title("New listening rule · Threadline")
    page.wait_for_load_state("load")  # htmx (a deferred script) must be bound before we type
    page.get_by_label("Name").fill("Globex switch")
    query = page.get_by_label("Query", exact=True)
    preview = page.locator("#dry-run")

    # A typo: the preview names the problem and marks where it is.
    query.press_sequentially("(globex AND switch", delay=20)
    expect(preview.locator(".dry-run-error")).to_be_visible()
    expect(preview.locator(".dry-run-error")).to_contain_text("at character")
    expect(preview.locator("mark.query-error-span")).to_be_visible()

    # Fixed: the stored message that matches appears, its terms highlighted and its markup shown as text.
    query.press("End")
    query.press_sequentially(")", delay=20)
    expect(preview.locator(".dry-run-summary")).to_contain_text("1 of the last")
    hit = preview.locator(".hit")
    expect(hit).to_have_count(1)
    expect(hit.locator("mark", has_text="Globex")).to_be_visible()
    expect(hit.locator("mark", has_text="switch")).to_be_visible()
    expect(hit).to_contain_text("<next>")
    expect(preview).not_to_contain_text("Lunch on Friday")

    page.get_by_role("button", name="Create rule").click()
    expect(page.get_by_text("Rule “Globex switch” created.")).to_be_visible()
    rule = ListeningRule.objects.get(name="Globex switch")
    assert rule.query == "(globex AND switch)" and rule.owner == rep and rule.alert_in_app

    # A matching message arrives through the pipeline; its messages_ingested event enqueues the evaluation.
    message = email_from(account, "greta@example.com", subject="Decision", body="We decided to switch to Globex.")
    assert message.pk in evaluated
    assert Mention.objects.filter(rule=rule, message=message).exists()
    assert Notification.objects.filter(user=rep).exists()

    page.goto(f"{live_server.url}/listening/")
    page.get_by_role("link", name="Notifications").click()
    expect(page.locator("#notification-area")).to_contain_text("Globex switch")

    page.get_by_role("link", name="Mentions", exact=True).first.click()
    expect(page).to_have_title("Mentions · Threadline")
    item = page.locator(".mention-item").filter(has_text="We decided to switch to Globex.")
    expect(item).to_be_visible()
    expect(item.locator(".mention-rule")).to_have_text("Globex switch")
    expect(item.locator("mark", has_text="Globex")).to_be_visible()
    expect(item.get_by_role("link", name=contact.display_name)).to_be_visible()
    item.get_by_role("link", name="Open the message").click()
    expect(page).to_have_title("Greta Golfer · Threadline")
    expect(page.locator(f"#m{message.pk}")).to_contain_text("We decided to switch to Globex.")

    page.goto(f"{live_server.url}/listening/charts/")
    volume = page.locator("#volume-chart svg.volume-chart")
    expect(volume).to_be_visible()
    expect(volume).to_have_attribute("role", "img")
    expect(volume.locator("polyline")).to_have_count(1)
    expect(page.locator("#volume-chart .chart-legend")).to_contain_text("Globex switch")
    expect(page.locator("#sentiment-chart svg.sentiment-chart rect")).not_to_have_count(0)


def test_a_teammate_sees_the_rule_read_only_with_its_preview_and_charts(page, live_server) -> None:  # type: ignore[no-untyped-def]
    team = TeamFactory(name="Team A")
    owner = membership(UserFactory(username="owner"), team)
    membership(UserFactory(username="rep"), team)
    hal = contact_create(
        actor=owner, first_name="Hal", last_name="Hiker", identities=[{"kind": "email", "value": "hal@x.example"}]
    )
    account = ChannelAccountFactory(owner=owner, team=team, name="Team mailbox")
    email_from(account, "hal@x.example", subject="Trail", body="Initech boots fell apart on the trail.")
    call_with(hal, minutes=5, notes="Hal says the Initech boots were replaced.")
    rule = ListeningRule.objects.create(
        owner=owner, team=team, name="Initech gear", query="initech AND boots", channels=["call", "sms"]
    )
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/listening/rules/{rule.pk}/")
    expect(page).to_have_title("Initech gear · Threadline")
    expect(page.get_by_text("only its owner")).to_be_visible()
    expect(page.get_by_label("Query", exact=True)).to_be_disabled()
    expect(page.get_by_role("button", name="Save rule")).to_have_count(0)
    # The stored rule (query and channels) drives the preview, though its disabled inputs are not submitted.
    preview = page.locator("#dry-run")
    expect(preview.locator(".dry-run-summary")).to_contain_text("1 of the last")
    expect(preview.locator(".hit")).to_contain_text("Hal says the")
    expect(preview.locator(".hit mark", has_text="Initech")).to_be_visible()
    expect(page.locator("#rule-volume-chart")).to_contain_text("No mentions in this period.")
    expect(page.locator("#rule-sentiment-chart")).to_be_visible()
