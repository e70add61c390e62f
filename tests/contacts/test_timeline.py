"""The timeline: one chronological, keyset-paginated feed per contact and company, merged from every source."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from contacts.models import Company, Contact, ContactIdentity
from contacts.selectors.timeline import company_timeline, contact_timeline, decode_cursor, encode_cursor
from contacts.services import company_create, contact_create, contact_update, identity_attach, identity_remove
from crm.errors import DomainError, NotFound

pytestmark = pytest.mark.django_db

HistoricalContact = Contact.history.model  # type: ignore[attr-defined]


def _all_entries(user, contact, limit: int) -> list:  # type: ignore[no-untyped-def]
    entries, before = [], None
    for _ in range(1000):
        page = contact_timeline(user=user, contact=contact, before=before, limit=limit)
        entries += page.entries
        if page.next is None:
            return entries
        before = page.next
    raise AssertionError("timeline never ended")


def _with_edits(world, n: int) -> Contact:  # type: ignore[no-untyped-def]
    contact = contact_create(actor=world.a1, first_name="Tess", last_name="Line", team=world.team_a)
    for i in range(n):
        contact_update(contact=contact, actor=world.a1, title=f"Title {i}")
    return contact


def test_changes_show_who_changed_which_fields_newest_first(world) -> None:  # type: ignore[no-untyped-def]
    contact = contact_create(actor=world.a1, first_name="Tess", last_name="Line")
    contact_update(contact=contact, actor=world.a2, lifecycle_stage=Contact.Stage.CUSTOMER, tier="A")
    contact_update(contact=contact, actor=world.a1, title="CTO")
    identity_attach(contact=contact, actor=world.a1, kind="email", value="tess@example.com")
    entries = contact_timeline(user=world.a1, contact=contact, before=None).entries
    kinds = [e.kind for e in entries if e.source in ("audit", "identity")]
    assert kinds == ["identity_added", "change", "change", "created"]
    stage_change = [e for e in entries if e.kind == "change"][1]
    assert "Lead → Customer" in stage_change.body and "Tier C" not in stage_change.body
    assert set(stage_change.extra["fields"]) == {"lifecycle_stage", "tier"}
    ats = [e.at for e in entries]
    assert ats == sorted(ats, reverse=True)


def test_saves_without_changes_are_not_on_the_timeline(world) -> None:  # type: ignore[no-untyped-def]
    contact = contact_create(actor=world.a1, first_name="Same")
    for _ in range(5):
        contact_update(contact=contact, actor=world.a1, first_name="Same")
    audit = [e for e in contact_timeline(user=world.a1, contact=contact, before=None).entries if e.source == "audit"]
    assert [e.kind for e in audit] == ["created"]


def test_company_change_names_the_companies(world) -> None:  # type: ignore[no-untyped-def]
    old = company_create(actor=world.a1, name="Old Co")
    new = company_create(actor=world.a1, name="New Co")
    contact = contact_create(actor=world.a1, first_name="Mover", company=old)
    contact_update(contact=contact, actor=world.a1, company=new)
    change = next(
        e for e in contact_timeline(user=world.a1, contact=contact, before=None).entries if e.kind == "change"
    )
    assert "Old Co → New Co" in change.body


def test_identity_removed_is_on_the_timeline(world) -> None:  # type: ignore[no-untyped-def]
    contact = contact_create(actor=world.a1, first_name="Ida")
    identity = identity_attach(contact=contact, actor=world.a1, kind="phone", value="(617) 555-0199")
    identity_remove(identity=identity, actor=world.a1)
    entries = contact_timeline(user=world.a1, contact=contact, before=None).entries
    assert [e.kind for e in entries if e.source == "identity"] == ["identity_removed", "identity_added"]


def test_pages_have_no_gaps_or_duplicates_even_with_equal_timestamps(world) -> None:  # type: ignore[no-untyped-def]
    contact = _with_edits(world, 12)
    for i in range(6):
        ContactIdentity.objects.create(contact=contact, kind="email", value=f"t{i}@x.org", normalized=f"t{i}@x.org")
    same_moment = timezone.now() - dt.timedelta(days=3)
    # Every history row at one instant: only (source, id) orders them, across sources and pages.
    HistoricalContact.objects.filter(id=contact.pk).update(history_date=same_moment)
    ContactIdentity.history.model.objects.filter(contact_id=contact.pk).update(history_date=same_moment)
    full = contact_timeline(user=world.a1, contact=contact, before=None, limit=100).entries
    for limit in (1, 2, 3, 5, 7):
        paged = _all_entries(world.a1, contact, limit)
        assert [e.cursor for e in paged] == [e.cursor for e in full], limit
    assert len({e.cursor for e in full}) == len(full) == 1 + 12 + 6


def test_query_count_does_not_grow_with_history(world, django_assert_max_num_queries) -> None:  # type: ignore[no-untyped-def]
    small, large = _with_edits(world, 5), _with_edits(world, 500)

    def count(contact: Contact) -> int:
        with CaptureQueriesContext(connection) as ctx:
            page = contact_timeline(user=world.a1, contact=contact, before=None, limit=30)
            contact_timeline(user=world.a1, contact=contact, before=encode_cursor(page.entries[-1].cursor), limit=30)
        return len(ctx.captured_queries)

    count(small)  # warm the per-user team cache, so both measured runs start equal
    assert count(small) == count(large)
    with django_assert_max_num_queries(12):
        contact_timeline(user=world.a1, contact=large, before=None, limit=30)


def test_invisible_contact_timeline_is_not_found(world, client, api_client) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotFound):
        contact_timeline(user=world.b1, contact=world.a1_shared, before=None)
    client.force_login(world.b1)
    assert client.get(reverse("contacts:timeline", args=[world.a1_shared.pk])).status_code == 404
    api_client.force_authenticate(world.b1)
    assert api_client.get(f"/api/v1/contacts/{world.a1_shared.pk}/timeline/").status_code == 404
    api_client.force_authenticate(world.a2)
    assert api_client.get(f"/api/v1/contacts/{world.a1_private.pk}/timeline/").status_code == 404


def test_tampered_cursor_is_a_clear_error(world, client, api_client) -> None:  # type: ignore[no-untyped-def]
    for token in ("garbage", encode_cursor((timezone.now(), "audit", 1))[:-3], "eyJ4IjoxfQ"):
        with pytest.raises(DomainError):
            decode_cursor(token)
    client.force_login(world.a1)
    response = client.get(reverse("contacts:timeline", args=[world.a1_shared.pk]), {"before": "garbage"})
    assert response.status_code == 400 and b"invalid" in response.content
    api_client.force_authenticate(world.a1)
    response = api_client.get(f"/api/v1/contacts/{world.a1_shared.pk}/timeline/", {"before": "garbage"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_cursor"


def test_api_pages_with_next_cursor(world, api_client) -> None:  # type: ignore[no-untyped-def]
    contact = _with_edits(world, 7)
    api_client.force_authenticate(world.a1)
    url = f"/api/v1/contacts/{contact.pk}/timeline/"
    first = api_client.get(url, {"limit": 5}).json()
    second = api_client.get(url, {"limit": 5, "before": first["next"]}).json()
    assert len(first["results"]) == 5 and len(second["results"]) == 3 and second["next"] is None
    ids = [(r["source"], r["id"]) for r in first["results"] + second["results"]]
    assert len(set(ids)) == 8


def test_contact_page_shows_timeline_and_older_link(world, client) -> None:  # type: ignore[no-untyped-def]
    contact = _with_edits(world, 40)
    client.force_login(world.a1)
    body = client.get(reverse("contacts:detail", args=[contact.pk])).content.decode()
    assert "Timeline" in body and "Changed title" in body
    assert f"{reverse('contacts:timeline', args=[contact.pk])}?before=" in body
    page = contact_timeline(user=world.a1, contact=contact, before=None)
    older = client.get(reverse("contacts:timeline", args=[contact.pk]), {"before": page.next}, HTTP_HX_REQUEST="true")
    assert older.status_code == 200 and "<html" not in older.content.decode()
    assert "Title 9" in older.content.decode()


def test_company_timeline_merges_visible_people_and_company_changes(world, client, api_client) -> None:  # type: ignore[no-untyped-def]
    company = company_create(actor=world.a1, name="Shared Co", team=world.team_a)
    Company.objects.filter(pk=company.pk).update(visibility="team")
    company.refresh_from_db()
    seen = contact_create(actor=world.a1, first_name="Seen", company=company, team=world.team_a)
    hidden = contact_create(actor=world.a2, first_name="Hidden", company=company, team=world.team_a,
                            visibility="private")  # fmt: skip
    from contacts.services import company_update

    company_update(company=company, actor=world.a1, industry="Aerospace")
    entries = company_timeline(user=world.a1, company=company, before=None).entries
    contact_ids = {e.extra.get("contact_id") for e in entries if e.source in ("audit", "identity")}
    assert seen.pk in contact_ids and hidden.pk not in contact_ids
    assert any(e.source == "company_audit" and e.title == "Changed industry" for e in entries)
    client.force_login(world.a1)
    body = client.get(reverse("contacts:company_detail", args=[company.pk])).content.decode()
    assert "Timeline" in body and "Seen" in body
    api_client.force_authenticate(world.b1)
    assert api_client.get(f"/api/v1/companies/{company.pk}/timeline/").status_code == 404
    api_client.force_authenticate(world.a1)
    assert api_client.get(f"/api/v1/companies/{company.pk}/timeline/").status_code == 200
