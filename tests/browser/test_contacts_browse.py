"""Browse in a real browser: header search with live results, the contact timeline with "Older", saved views."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from contacts.services import contact_create, contact_update
from tests.accounts.factories import TeamFactory, UserFactory, membership

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _sign_in(page, live_server, username: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Sign in").click()


def test_search_open_contact_and_page_the_timeline(page, live_server) -> None:  # type: ignore[no-untyped-def]
    team = TeamFactory(name="Team A")
    rep = membership(UserFactory(username="rep"), team)
    contact = contact_create(actor=rep, first_name="Quincy", last_name="Zebulon", team=team,
                             identities=[{"kind": "phone", "value": "(617) 555-0142"}])  # fmt: skip
    for n in range(40):
        contact_update(contact=contact, actor=rep, title=f"Role {n}")
    _sign_in(page, live_server, "rep")
    box = page.get_by_role("searchbox", name="Search contacts and companies")
    box.press_sequentially("617 555 01", delay=30)
    live = page.locator("#global-search-results")
    expect(live.get_by_role("link", name="Quincy Zebulon")).to_be_visible()
    live.get_by_role("link", name="Quincy Zebulon").click()
    expect(page).to_have_title("Quincy Zebulon · Threadline")
    timeline = page.locator("#timeline")
    expect(timeline.locator("li.timeline-entry")).to_have_count(30)
    page.get_by_role("link", name="Older").click()
    expect(timeline.locator("li.timeline-entry")).to_have_count(41 + 1)  # 40 changes, creation, identity added
    expect(timeline.get_by_text("Phone added: (617) 555-0142")).to_be_visible()
    expect(page.get_by_role("link", name="Older")).to_have_count(0)


def test_full_search_page_by_pressing_enter(page, live_server) -> None:  # type: ignore[no-untyped-def]
    team = TeamFactory(name="Team A")
    rep = membership(UserFactory(username="rep"), team)
    contact_create(actor=rep, first_name="Hedda", last_name="Gabler", team=team,
                   identities=[{"kind": "email", "value": "hedda@ibsen.example"}])  # fmt: skip
    _sign_in(page, live_server, "rep")
    box = page.get_by_role("searchbox", name="Search contacts and companies")
    box.fill("hedda@ibs")
    box.press("Enter")
    expect(page).to_have_title("Search: hedda@ibs · Threadline")
    expect(page.get_by_role("cell", name="hedda@ibsen.example")).to_be_visible()


def test_save_a_view_and_reopen_it(page, live_server) -> None:  # type: ignore[no-untyped-def]
    team = TeamFactory(name="Team A")
    rep = membership(UserFactory(username="rep"), team)
    contact_create(actor=rep, first_name="Cora", last_name="Customer", team=team, lifecycle_stage="customer")
    contact_create(actor=rep, first_name="Lee", last_name="Lead", team=team)
    _sign_in(page, live_server, "rep")
    page.goto(f"{live_server.url}/contacts/")
    page.get_by_label("Stage").select_option("customer")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("link", name="Cora Customer")).to_be_visible()
    expect(page.get_by_role("link", name="Lee Lead")).to_have_count(0)
    page.get_by_label("Save this view as").fill("Customers")
    page.get_by_role("button", name="Save this view").click()
    expect(page.get_by_text('Saved the view "Customers".')).to_be_visible()
    page.get_by_role("link", name="Clear").click()
    expect(page.get_by_role("link", name="Lee Lead")).to_be_visible()
    page.get_by_role("link", name="Customers", exact=True).click()
    expect(page.get_by_role("link", name="Cora Customer")).to_be_visible()
    expect(page.get_by_role("link", name="Lee Lead")).to_have_count(0)
    expect(page.get_by_label("Stage")).to_have_value("customer")
