"""contact_merge and contact_unmerge: what moves, what is refused, and that unmerge puts both contacts back exactly."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from contacts.models import Contact, ContactIdentity, DuplicateCandidate, MergeRecord
from contacts.services import contact_update, identity_attach, identity_remove
from contacts.services.duplicates import duplicates_find
from contacts.services.merge import contact_merge, contact_snapshot, contact_unmerge
from crm.errors import Conflict, DomainError, NotFound
from tests.contacts.factories import CompanyFactory, ContactFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def pair(world):  # type: ignore[no-untyped-def]
    """Two of a1's contacts that are one person: Jane with a work address, J. Doe with a gmail and a phone."""
    acme = CompanyFactory(name="Acme", owner=world.a1, team=world.team_a)
    jane = ContactFactory(
        first_name="Jane", last_name="Doe", owner=world.a1, team=world.team_a, tags=["vip"], company=acme,
        last_touch_at=timezone.now() - datetime.timedelta(days=9),
    )  # fmt: skip
    dup = ContactFactory(
        first_name="J.", last_name="Doe", owner=world.a1, team=world.team_a, tags=["vip", "newsletter"],
        title="CTO", city="Berlin", country="DE", latitude=Decimal("52.520008"), longitude=Decimal("13.404954"),
        birthday=datetime.date(1980, 2, 29), custom_fields={"shoe": "42"}, do_not_contact=True,
        last_touch_at=timezone.now() - datetime.timedelta(days=1),
    )  # fmt: skip
    identity_attach(contact=jane, actor=world.a1, kind="email", value="jane@acme.com", is_primary=True)
    identity_attach(contact=dup, actor=world.a1, kind="email", value="Jane.Doe@gmail.com", is_primary=True)
    identity_attach(contact=dup, actor=world.a1, kind="phone", value="+49 30 1234567")
    return jane, dup


def _fresh(contact_id: int) -> Contact:
    return Contact.objects.get(pk=contact_id)


def test_merge_moves_identities_tags_and_empty_fields_and_deletes_duplicate(world, pair) -> None:  # type: ignore[no-untyped-def]
    jane, dup = pair
    record = contact_merge(primary=jane, duplicate=dup, actor=world.a1)
    assert not Contact.objects.filter(pk=dup.pk).exists()
    jane = _fresh(jane.pk)
    assert sorted(jane.identities.values_list("normalized", flat=True)) == [
        "+49301234567", "jane.doe@gmail.com", "jane@acme.com",
    ]  # fmt: skip
    # The survivor keeps its own primary e-mail; the moved one is demoted, not dropped.
    assert list(jane.identities.filter(is_primary=True).values_list("normalized", flat=True)) == ["jane@acme.com"]
    assert jane.tags == ["vip", "newsletter"]
    assert (jane.title, jane.city, jane.country, jane.birthday) == ("CTO", "Berlin", "DE", datetime.date(1980, 2, 29))
    assert jane.latitude == Decimal("52.520008")
    assert jane.custom_fields == {"shoe": "42"}
    assert jane.do_not_contact is True
    assert jane.last_touch_at == dup.last_touch_at
    assert jane.company.name == "Acme"  # never overwritten
    assert record.duplicate_id_was == dup.pk and record.primary_id == jane.pk
    assert record.duplicate_snapshot["first_name"] == "J."
    assert len(record.duplicate_snapshot["identities"]) == 2
    assert set(record.moved) >= {"identities", "fields", "duplicate_candidates"}
    assert record.conflicts == []
    # The search index knows the moved addresses.
    assert Contact.objects.filter(pk=jane.pk, search_vector="gmail").exists()


def test_merge_marks_pair_merged_and_repoints_other_pairs(world, pair) -> None:  # type: ignore[no-untyped-def]
    jane, dup = pair
    third = ContactFactory(owner=world.a1, team=world.team_a)
    identity_attach(contact=third, actor=world.a1, kind="email", value="janedoe+x@googlemail.com")
    identity_attach(contact=jane, actor=world.a1, kind="other", value="JANE.DOE@gmail.com")
    duplicates_find()
    assert DuplicateCandidate.objects.count() == 3
    record = contact_merge(primary=jane, duplicate=dup, actor=world.a1)
    rows = list(DuplicateCandidate.objects.values_list("contact_a_id", "contact_b_id"))
    assert rows == [tuple(sorted([jane.pk, third.pk]))]
    assert record.moved["duplicate_candidates"]["pair"]["status"] == "merged"


def test_merge_with_itself_is_a_clear_error_and_changes_nothing(world, pair) -> None:  # type: ignore[no-untyped-def]
    jane, _ = pair
    before = contact_snapshot(_fresh(jane.pk))
    with pytest.raises(DomainError, match="cannot be merged with itself"):
        contact_merge(primary=jane, duplicate=jane, actor=world.a1)
    assert contact_snapshot(_fresh(jane.pk)) == before
    assert MergeRecord.objects.count() == 0


def test_merge_of_invisible_contact_is_not_found(world, pair) -> None:  # type: ignore[no-untyped-def]
    jane, _ = pair
    with pytest.raises(NotFound):
        contact_merge(primary=jane, duplicate=world.b1_shared, actor=world.a1)
    with pytest.raises(NotFound):
        contact_merge(primary=world.b1_shared, duplicate=jane, actor=world.a1)
    assert Contact.objects.filter(pk=world.b1_shared.pk).exists()


def test_unmerge_restores_both_contacts_exactly(world, pair) -> None:  # type: ignore[no-untyped-def]
    jane, dup = pair
    jane_before, dup_before = contact_snapshot(_fresh(jane.pk)), contact_snapshot(_fresh(dup.pk))
    record = contact_merge(primary=jane, duplicate=dup, actor=world.a1)
    primary, duplicate = contact_unmerge(record=record, actor=world.a1)
    assert (primary.pk, duplicate.pk) == (jane.pk, dup.pk)
    assert contact_snapshot(_fresh(dup.pk)) == dup_before
    assert contact_snapshot(_fresh(jane.pk)) == jane_before
    record.refresh_from_db()
    assert record.unmerged_at is not None and record.unmerged_by == world.a1
    # Both are findable again by what they own.
    assert Contact.objects.filter(pk=dup.pk, search_vector="gmail").exists()
    assert not Contact.objects.filter(pk=jane.pk, search_vector="gmail").exists()


def test_unmerge_restores_pairs_without_reopening_them(world, pair) -> None:  # type: ignore[no-untyped-def]
    jane, dup = pair
    identity_attach(contact=jane, actor=world.a1, kind="other", value="JANE.DOE@gmail.com")
    duplicates_find()
    record = contact_merge(primary=jane, duplicate=dup, actor=world.a1)
    contact_unmerge(record=record, actor=world.a1)
    candidate = DuplicateCandidate.objects.get()
    assert candidate.status == DuplicateCandidate.Status.MERGED
    duplicates_find()
    assert DuplicateCandidate.objects.get().status == DuplicateCandidate.Status.MERGED


def test_unmerge_after_later_edit_of_a_merged_field_is_a_conflict_report(world, pair) -> None:  # type: ignore[no-untyped-def]
    jane, dup = pair
    record = contact_merge(primary=jane, duplicate=dup, actor=world.a1)
    contact_update(contact=_fresh(jane.pk), actor=world.a1, title="VP Engineering")
    moved_phone = ContactIdentity.objects.get(normalized="+49301234567")
    identity_remove(identity=moved_phone, actor=world.a1)
    with pytest.raises(Conflict) as excinfo:
        contact_unmerge(record=record, actor=world.a1)
    conflicts = excinfo.value.fields["conflicts"]
    assert any("Title was changed after the merge" in c and "VP Engineering" in c for c in conflicts)
    assert any("+49301234567 was deleted after the merge" in c for c in conflicts)
    # Nothing changed: the duplicate is still merged away, the later edit is intact.
    assert not Contact.objects.filter(pk=dup.pk).exists()
    assert _fresh(jane.pk).title == "VP Engineering"
    record.refresh_from_db()
    assert record.unmerged_at is None


def test_unmerge_after_identity_moved_to_someone_else_is_a_conflict(world, pair) -> None:  # type: ignore[no-untyped-def]
    jane, dup = pair
    record = contact_merge(primary=jane, duplicate=dup, actor=world.a1)
    other = ContactFactory(owner=world.a1, team=world.team_a)
    ContactIdentity.objects.filter(normalized="jane.doe@gmail.com").update(contact=other)
    with pytest.raises(Conflict, match=f"now belongs to contact #{other.pk}"):
        contact_unmerge(record=record, actor=world.a1)


def test_unmerge_keeps_later_unrelated_edits(world, pair) -> None:  # type: ignore[no-untyped-def]
    jane, dup = pair
    record = contact_merge(primary=jane, duplicate=dup, actor=world.a1)
    contact_update(contact=_fresh(jane.pk), actor=world.a1, notes="Met at the fair")
    contact_unmerge(record=record, actor=world.a1)
    jane = _fresh(jane.pk)
    assert jane.notes == "Met at the fair" and jane.title == "" and jane.tags == ["vip"]


def test_unmerging_twice_is_a_clear_error(world, pair) -> None:  # type: ignore[no-untyped-def]
    jane, dup = pair
    record = contact_merge(primary=jane, duplicate=dup, actor=world.a1)
    contact_unmerge(record=record, actor=world.a1)
    with pytest.raises(DomainError, match="already undone"):
        contact_unmerge(record=record, actor=world.a1)
    assert Contact.objects.filter(pk=dup.pk).count() == 1


def test_unmerge_by_user_who_cannot_see_the_survivor_is_not_found(world, pair) -> None:  # type: ignore[no-untyped-def]
    jane, dup = pair
    record = contact_merge(primary=jane, duplicate=dup, actor=world.a1)
    with pytest.raises(NotFound):
        contact_unmerge(record=record, actor=world.b1)
    assert not Contact.objects.filter(pk=dup.pk).exists()


def test_merge_timeline_shows_merge_and_unmerge(world, pair) -> None:  # type: ignore[no-untyped-def]
    from contacts.selectors.timeline import contact_timeline

    jane, dup = pair
    record = contact_merge(primary=jane, duplicate=dup, actor=world.a1)
    contact_unmerge(record=record, actor=world.a1)
    page = contact_timeline(user=world.a1, contact=jane, before=None, limit=100)
    titles = [e.title for e in page.entries if e.source == "merge"]
    assert titles == ["Unmerged J. Doe", "Merged J. Doe into this contact"]
    # Keyset: asking for entries older than the unmerge returns only the merge.
    from contacts.selectors.timeline import encode_cursor

    unmerge_entry = next(e for e in page.entries if e.title == "Unmerged J. Doe")
    older = contact_timeline(user=world.a1, contact=jane, before=encode_cursor(unmerge_entry.cursor), limit=100)
    assert [e.title for e in older.entries if e.source == "merge"] == ["Merged J. Doe into this contact"]


# --- Pages ----------------------------------------------------------------------------------------------------


def test_merge_page_search_compare_confirm_and_undo(client, world, pair) -> None:  # type: ignore[no-untyped-def]
    jane, dup = pair
    client.force_login(world.a1)
    url = reverse("contacts:merge", args=[jane.pk])
    found = client.get(url, {"q": "Doe"})
    assert found.status_code == 200 and found.context["page_title"] == "Merge Jane Doe"
    assert [c.pk for c in found.context["results"]] == [dup.pk]  # never offers the contact itself
    compare = client.get(url, {"other": dup.pk})
    assert compare.status_code == 200
    body = compare.content.decode()
    assert "Jane.Doe@gmail.com" in body and "newsletter" in body and "Keep Jane Doe" in body
    response = client.post(url, {"other": dup.pk, "survivor": jane.pk}, follow=True)
    record = MergeRecord.objects.get()
    assert response.redirect_chain[-1][0] == reverse("contacts:merge_detail", args=[record.pk])
    assert "Merged J. Doe into Jane Doe" in response.content.decode()
    assert not Contact.objects.filter(pk=dup.pk).exists()
    detail = client.get(reverse("contacts:detail", args=[jane.pk])).content.decode()
    assert "Merged into this contact" in detail and "Unmerge" in detail
    response = client.post(reverse("contacts:unmerge", args=[record.pk]), follow=True)
    assert "separate contacts again" in response.content.decode()
    assert Contact.objects.filter(pk=dup.pk).exists()


def test_merge_page_keeps_the_chosen_survivor(client, world, pair) -> None:  # type: ignore[no-untyped-def]
    jane, dup = pair
    client.force_login(world.a1)
    client.post(reverse("contacts:merge", args=[jane.pk]), {"other": dup.pk, "survivor": dup.pk})
    assert Contact.objects.filter(pk=dup.pk).exists() and not Contact.objects.filter(pk=jane.pk).exists()


def test_merge_page_with_itself_or_invisible_contact_is_a_clear_message(client, world, pair) -> None:  # type: ignore[no-untyped-def]
    jane, _ = pair
    client.force_login(world.a1)
    url = reverse("contacts:merge", args=[jane.pk])
    response = client.get(url, {"other": jane.pk}, follow=True)
    assert "cannot be merged with itself" in response.content.decode()
    response = client.post(url, {"other": jane.pk, "survivor": jane.pk}, follow=True)
    assert "cannot be merged with itself" in response.content.decode()
    response = client.get(url, {"other": world.b1_shared.pk}, follow=True)
    assert f"no contact #{world.b1_shared.pk} you can see" in response.content.decode()
    assert client.post(url, {"other": world.b1_shared.pk, "survivor": jane.pk}).status_code == 404
    assert client.get(reverse("contacts:merge", args=[world.b1_shared.pk])).status_code == 404
    assert Contact.objects.count() == 7 and MergeRecord.objects.count() == 0


def test_unmerge_page_shows_itemised_conflicts(client, world, pair) -> None:  # type: ignore[no-untyped-def]
    jane, dup = pair
    record = contact_merge(primary=jane, duplicate=dup, actor=world.a1)
    contact_update(contact=_fresh(jane.pk), actor=world.a1, city="Paris")
    client.force_login(world.a1)
    response = client.post(reverse("contacts:unmerge", args=[record.pk]))
    assert response.status_code == 409
    body = response.content.decode()
    assert "The merge cannot be undone" in body and "City was changed after the merge" in body
    assert not Contact.objects.filter(pk=dup.pk).exists()


def test_merge_record_of_invisible_contact_is_404(client, world, pair) -> None:  # type: ignore[no-untyped-def]
    jane, dup = pair
    record = contact_merge(primary=jane, duplicate=dup, actor=world.a1)
    client.force_login(world.b1)
    assert client.get(reverse("contacts:merge_detail", args=[record.pk])).status_code == 404
    assert client.post(reverse("contacts:unmerge", args=[record.pk])).status_code == 404


# --- API ------------------------------------------------------------------------------------------------------


def test_api_merge_get_and_unmerge(api_client, world, pair) -> None:  # type: ignore[no-untyped-def]
    jane, dup = pair
    api_client.force_authenticate(world.a1)
    response = api_client.post("/api/v1/contacts/merge/", {"primary": jane.pk, "duplicate": dup.pk}, format="json")
    assert response.status_code == 201, response.content
    record_id = response.json()["id"]
    assert response.json()["duplicate_id_was"] == dup.pk
    assert api_client.get(f"/api/v1/merges/{record_id}/").json()["primary"] == jane.pk
    response = api_client.post(f"/api/v1/merges/{record_id}/unmerge/")
    assert response.status_code == 200
    assert response.json()["duplicate"] == dup.pk and response.json()["record"]["unmerged_at"]
    response = api_client.post(f"/api/v1/merges/{record_id}/unmerge/")
    assert response.status_code == 400 and response.json()["error"]["code"] == "already_unmerged"


def test_api_merge_bad_input(api_client, world, pair) -> None:  # type: ignore[no-untyped-def]
    jane, _ = pair
    api_client.force_authenticate(world.a1)
    response = api_client.post("/api/v1/contacts/merge/", {"primary": jane.pk, "duplicate": jane.pk}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "merge_self"
    response = api_client.post(
        "/api/v1/contacts/merge/", {"primary": jane.pk, "duplicate": world.b1_shared.pk}, format="json"
    )
    assert response.status_code == 404
    response = api_client.post("/api/v1/contacts/merge/", {"primary": "x"}, format="json")
    assert response.status_code == 400 and set(response.json()["error"]["fields"]) == {"primary", "duplicate"}
    assert Contact.objects.count() == 7


def test_api_unmerge_conflict_is_409_with_report(api_client, world, pair) -> None:  # type: ignore[no-untyped-def]
    jane, dup = pair
    record = contact_merge(primary=jane, duplicate=dup, actor=world.a1)
    contact_update(contact=_fresh(jane.pk), actor=world.a1, tags=["other"])
    api_client.force_authenticate(world.a1)
    response = api_client.post(f"/api/v1/merges/{record.pk}/unmerge/")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "unmerge_conflict"
    assert any("Tags was changed" in c for c in error["fields"]["conflicts"])


def test_api_merge_list_respects_visibility(api_client, world, pair, django_assert_max_num_queries) -> None:  # type: ignore[no-untyped-def]
    jane, dup = pair
    contact_merge(primary=jane, duplicate=dup, actor=world.a1)
    api_client.force_authenticate(world.b1)
    assert api_client.get("/api/v1/merges/").json()["results"] == []
    api_client.force_authenticate(world.a1)
    with django_assert_max_num_queries(6):
        assert len(api_client.get("/api/v1/merges/").json()["results"]) == 1


def test_merge_page_with_non_ascii_digit_ids_is_a_clear_message(client, world, pair) -> None:  # type: ignore[no-untyped-def]
    primary, duplicate = pair
    client.force_login(world.ma)
    url = reverse("contacts:merge", args=[primary.pk])
    assert client.get(url, {"other": "²"}).status_code == 200
    assert client.get(url, {"q": "#²"}).status_code == 200
    response = client.post(url, {"other": str(duplicate.pk), "survivor": "²"})
    assert response.status_code == 302
    assert Contact.objects.filter(pk=duplicate.pk).exists()


def test_unmerge_after_the_duplicates_team_and_owner_were_deleted(world, pair) -> None:  # type: ignore[no-untyped-def]
    from accounts.models import Team
    from tests.accounts.factories import UserFactory

    primary, duplicate = pair
    leaver = UserFactory(username="leaver")
    gone_team = Team.objects.create(name="Gone")
    Contact.objects.filter(pk=duplicate.pk).update(owner=leaver, team=gone_team)
    duplicate.refresh_from_db()
    record = contact_merge(primary=primary, duplicate=duplicate, actor=world.admin)
    gone_team.delete()
    leaver.delete()  # possible now: the merged-away contact no longer PROTECTs its owner
    primary, restored = contact_unmerge(record=record, actor=world.admin)
    assert restored.pk == duplicate.pk and restored.owner_id is None and restored.team_id is None


def test_private_contact_merged_into_a_shared_one_stays_private_in_the_merge_record(client, api_client, world) -> None:  # type: ignore[no-untyped-def]
    from contacts.selectors.timeline import contact_timeline

    shared, private = world.a2_shared, world.a1_private  # a2 sees the first, only a1 and managers the second
    private_record = contact_merge(primary=shared, duplicate=private, actor=world.ma)
    team_record = contact_merge(primary=shared, duplicate=world.a1_shared, actor=world.ma)
    client.force_login(world.a2)
    assert client.get(reverse("contacts:merge_detail", args=[private_record.pk])).status_code == 404
    assert client.get(reverse("contacts:merge_detail", args=[team_record.pk])).status_code == 200
    api_client.force_authenticate(world.a2)
    assert api_client.get(f"/api/v1/merges/{private_record.pk}/").status_code == 404
    assert [r["id"] for r in api_client.get("/api/v1/merges/").json()["results"]] == [team_record.pk]
    titles = [
        e.title for e in contact_timeline(user=world.a2, contact=shared, before=None).entries if e.source == "merge"
    ]
    assert titles == ["Merged Ann Shared into this contact"]
    for user in (world.a1, world.ma):
        merges = contact_timeline(user=user, contact=shared, before=None).entries
        assert len([e for e in merges if e.source == "merge"]) == 2
