"""Contact profile in the browser: relationships and intro path, a life event, consent, and the edit page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.models import User
from contacts.models import CustomFieldDefinition, LifeEvent, Relationship
from tests.accounts.factories import TeamFactory, UserFactory, membership
from tests.contacts.factories import ContactFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_profile_relationship_life_event_consent_and_edit(page, live_server) -> None:  # type: ignore[no-untyped-def]
    team = TeamFactory(name="Sales")
    jane = membership(UserFactory(username="jane"), team)
    boss = UserFactory(username="boss", role=User.Role.ADMIN)
    CustomFieldDefinition.objects.create(key="seats", label="Seats", field_type="number")
    friend = ContactFactory(first_name="Fred", last_name="Friend", owner=jane, team=team)
    target = ContactFactory(first_name="Tara", last_name="Target", owner=boss, team=team)
    Relationship.objects.create(from_contact=friend, to_contact=target, kind="colleague", strength=4)

    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("jane")
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Sign in").click()

    page.goto(f"{live_server.url}/contacts/{target.pk}/")
    expect(page).to_have_title("Tara Target · Threadline")
    relationships = page.locator("#profile-relationships")
    expect(relationships.get_by_role("link", name="Fred Friend").first).to_be_visible()
    expect(page.get_by_role("heading", name="Who can introduce you")).to_be_visible()
    intro = page.locator(".intro-paths li").first
    expect(intro).to_contain_text("Fred Friend")
    expect(intro).to_contain_text("1 hop")

    events = page.locator("#profile-life-events")
    events.get_by_label("Kind").select_option("promotion")
    events.get_by_label("Date").fill("2024-05-02")
    events.get_by_label("Title").fill("Head of Sales")
    events.get_by_role("button", name="Add event").click()
    expect(events.get_by_text("Head of Sales")).to_be_visible()
    expect(page.locator("#messages")).to_contain_text("Life event “Head of Sales” added.")
    assert LifeEvent.objects.filter(contact=target, title="Head of Sales").exists()

    consent = page.locator("#profile-consent")
    consent.get_by_label("Channel").select_option("email")
    consent.get_by_label("Status").select_option("opted_in")
    consent.get_by_label("Legal basis").select_option("consent")
    consent.get_by_role("button", name="Save consent").click()
    expect(consent.get_by_role("row", name="E-mail")).to_contain_text("Opted in")
    expect(page.locator("#messages")).to_contain_text("E-mail consent set to opted in.")

    page.get_by_role("link", name="Edit contact").click()
    expect(page).to_have_title("Edit Tara Target · Threadline")
    page.get_by_label("Job title").fill("CTO")
    page.get_by_label("Seats").fill("40")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#messages")).to_contain_text("Contact Tara Target saved.")
    expect(page.locator(".page-header .subtitle")).to_contain_text("CTO")
    expect(page.get_by_role("heading", name="More details")).to_be_visible()
    target.refresh_from_db()
    assert target.custom_fields == {"seats": 40} and target.title == "CTO"


def test_edit_page_shows_a_bad_custom_value_on_its_field(page, live_server) -> None:  # type: ignore[no-untyped-def]
    team = TeamFactory(name="Sales")
    jane = membership(UserFactory(username="jane"), team)
    CustomFieldDefinition.objects.create(key="renewal", label="Renewal", field_type="date")
    contact = ContactFactory(first_name="Ed", last_name="Edit", owner=jane, team=team)
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("jane")
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{live_server.url}/contacts/{contact.pk}/edit/")
    # A date input only holds valid dates; force a bad value the way a scripted client could.
    page.get_by_label("Renewal").evaluate("el => { el.type = 'text'; el.value = 'next spring'; }")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("alert").filter(has_text="is not a date")).to_be_visible()
    contact.refresh_from_db()
    assert contact.custom_fields == {}
