"""Search a contact, open it, add an identity, merge another contact into it, undo the merge; and the review queue."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from accounts.models import User
from contacts.models import Contact, ContactIdentity, DuplicateCandidate
from contacts.services import identity_attach
from contacts.services.duplicates import duplicates_find
from tests.accounts.factories import TeamFactory, UserFactory, membership
from tests.contacts.factories import ContactFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _sign_in(page, live_server, username: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="My day", level=1)).to_be_visible()


def test_search_open_add_identity_merge_and_unmerge(page, live_server) -> None:  # type: ignore[no-untyped-def]
    boss = UserFactory(username="boss", role=User.Role.ADMIN)
    team = TeamFactory(name="Sales")
    membership(boss, team)
    zelda = ContactFactory(first_name="Zelda", last_name="Quartermain", owner=boss, team=team)
    twin = ContactFactory(first_name="Z.", last_name="Quartermain", owner=boss, team=team, title="Head of Ops")
    identity_attach(contact=twin, actor=boss, kind="phone", value="+49 30 7654321")

    _sign_in(page, live_server, "boss")
    page.goto(f"{live_server.url}/contacts/")
    page.get_by_label("Search", exact=True).press_sequentially("Zelda")  # keyup drives the htmx live search
    rows = page.locator("#contact-rows")
    expect(rows.get_by_role("link", name="Z. Quartermain")).to_have_count(0)  # htmx narrowed the list
    rows.get_by_role("link", name="Zelda Quartermain").click()
    expect(page.get_by_role("heading", name="Zelda Quartermain", level=1)).to_be_visible()
    expect(page).to_have_title("Zelda Quartermain · Threadline")

    # Add an identity with the form that is already on the contact page.
    identities = page.get_by_role("region", name="Addresses and handles")
    identities.get_by_label("Kind").select_option("email")
    identities.get_by_label("Value").fill("zelda@quartermain.example")
    identities.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("#identities")).to_contain_text("zelda@quartermain.example")

    # Merge the twin into Zelda: find it, compare, keep Zelda, confirm.
    page.get_by_text("Merge with…").click()
    page.get_by_label("Contact name, e-mail or #id").fill("Quartermain")
    page.get_by_role("button", name="Find").click()
    expect(page).to_have_title("Merge Zelda Quartermain · Threadline")
    page.get_by_role("link", name="Compare with Z. Quartermain").click()
    expect(page.get_by_label("Keep Zelda Quartermain")).to_be_checked()
    expect(page.locator(".merge-option").first).to_contain_text("+49 30 7654321")  # what will move
    page.get_by_role("button", name="Merge contacts").click()
    expect(page.get_by_role("status")).to_contain_text("Merged Z. Quartermain into Zelda Quartermain")
    assert not Contact.objects.filter(pk=twin.pk).exists()
    assert set(zelda.identities.values_list("normalized", flat=True)) == {"zelda@quartermain.example", "+49307654321"}

    # The contact page lists the merge; undo it from the merge page.
    page.get_by_role("link", name="Zelda Quartermain").first.click()
    expect(page.get_by_role("heading", name="Merged into this contact")).to_be_visible()
    page.get_by_role("link", name=re.compile(r"Z\. Quartermain \(#\d+\)")).click()
    page.get_by_role("button", name="Undo merge").click()
    expect(page.get_by_role("status")).to_contain_text("separate contacts again")

    # Both exist again, each with its own identities.
    assert list(Contact.objects.get(pk=twin.pk).identities.values_list("normalized", flat=True)) == ["+49307654321"]
    assert list(zelda.identities.values_list("normalized", flat=True)) == ["zelda@quartermain.example"]
    page.get_by_role("link", name=f"Z. Quartermain (#{twin.pk})").click()
    expect(page.get_by_role("heading", name="Z. Quartermain", level=1)).to_be_visible()
    expect(page.locator("#identities")).to_contain_text("+49 30 7654321")


def test_manager_reviews_queue_dismisses_and_merges(page, live_server) -> None:  # type: ignore[no-untyped-def]
    team = TeamFactory(name="Sales")
    manager = membership(UserFactory(username="mgr", role=User.Role.MANAGER), team, manager=True)
    rep = membership(UserFactory(username="rep"), team)
    a = ContactFactory(first_name="Ann", last_name="Lee", owner=rep, team=team)
    b = ContactFactory(first_name="Annie", last_name="Lee", owner=rep, team=team)
    c = ContactFactory(first_name="Bo", last_name="Chan", owner=rep, team=team)
    d = ContactFactory(first_name="Bob", last_name="Chan", owner=rep, team=team)
    identity_attach(contact=a, actor=rep, kind="email", value="ann.lee@gmail.com")
    identity_attach(contact=b, actor=rep, kind="email", value="annlee+crm@googlemail.com")
    identity_attach(contact=c, actor=rep, kind="phone", value="+44 20 7946 0000")
    ContactIdentity.objects.create(contact=d, kind="other", value="020 7946 0000", normalized="020 7946 0000")
    duplicates_find()

    _sign_in(page, live_server, "mgr")
    page.goto(f"{live_server.url}/duplicates/")
    expect(page).to_have_title("Duplicate review · Threadline")
    pairs = page.locator(".duplicate-pair")
    expect(pairs).to_have_count(2)
    page.get_by_role("button", name="Scan for duplicates now").click()
    expect(page.get_by_role("status")).to_contain_text("Duplicate scan started")

    chan = pairs.filter(has_text="Bo Chan")
    chan.get_by_role("button", name="Not a duplicate").click()
    expect(page.get_by_role("status")).to_contain_text("as different people")
    expect(pairs).to_have_count(1)

    pairs.first.get_by_role("link", name="Merge…").click()
    page.get_by_label("Keep Annie Lee").check()
    page.get_by_role("button", name="Merge contacts").click()
    expect(page.get_by_role("status")).to_contain_text("Merged Ann Lee into Annie Lee")
    assert not Contact.objects.filter(pk=a.pk).exists()
    assert DuplicateCandidate.objects.get().status == DuplicateCandidate.Status.DISMISSED
    page.goto(f"{live_server.url}/duplicates/")
    expect(page.get_by_text("No open duplicate pairs")).to_be_visible()
    assert manager.is_manager_role
