"""Relationship graph: create/update/delete rules, visibility, the contact page and the API."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from contacts.models import Relationship
from contacts.selectors.relationships import contact_relationships, relationship_list
from contacts.services.relationships import relationship_create, relationship_delete, relationship_update
from crm.errors import Conflict, DomainError, NotFound
from tests.contacts.factories import ContactFactory

pytestmark = pytest.mark.django_db


def test_rep_links_two_visible_contacts_and_sees_both_directions(world) -> None:
    rel = relationship_create(
        actor=world.a1, from_contact=world.a1_shared, to_contact=world.a2_shared, kind="reports_to", strength=4
    )
    assert rel.created_by == world.a1
    mine = contact_relationships(user=world.a1, contact=world.a1_shared)
    theirs = contact_relationships(user=world.a1, contact=world.a2_shared)
    assert [(r.other, r.outgoing) for r in mine] == [(world.a2_shared, True)]
    assert [(r.other, r.outgoing) for r in theirs] == [(world.a1_shared, False)]


def test_rep_cannot_link_to_an_invisible_contact(world) -> None:
    with pytest.raises(NotFound):
        relationship_create(actor=world.a1, from_contact=world.a1_shared, to_contact=world.b1_shared, kind="friend")
    with pytest.raises(NotFound):
        relationship_create(actor=world.a1, from_contact=world.a2_private, to_contact=world.a1_shared, kind="friend")
    assert not Relationship.objects.exists()


def test_relationship_to_invisible_contact_is_hidden(world) -> None:
    relationship_create(actor=world.admin, from_contact=world.a1_shared, to_contact=world.b1_shared, kind="friend")
    relationship_create(actor=world.admin, from_contact=world.a1_shared, to_contact=world.a2_shared, kind="friend")
    rows = contact_relationships(user=world.a1, contact=world.a1_shared)
    assert [r.other for r in rows] == [world.a2_shared]
    assert relationship_list(user=world.b1).count() == 0
    assert relationship_list(user=world.admin).count() == 2


def test_self_link_is_a_clear_error(world) -> None:
    with pytest.raises(DomainError) as exc:
        relationship_create(actor=world.a1, from_contact=world.a1_shared, to_contact=world.a1_shared, kind="friend")
    assert exc.value.code == "self_link"
    assert "themselves" in exc.value.message
    assert not Relationship.objects.exists()


def test_duplicate_edge_is_a_conflict_and_keeps_the_first(world) -> None:
    first = relationship_create(
        actor=world.a1, from_contact=world.a1_shared, to_contact=world.a2_shared, kind="friend", notes="school"
    )
    with pytest.raises(Conflict) as exc:
        relationship_create(actor=world.a1, from_contact=world.a1_shared, to_contact=world.a2_shared, kind="friend")
    assert "already linked" in exc.value.message
    assert list(Relationship.objects.values_list("id", "notes")) == [(first.pk, "school")]
    # Another kind, or the other direction, is a different edge.
    relationship_create(actor=world.a1, from_contact=world.a2_shared, to_contact=world.a1_shared, kind="friend")
    relationship_create(actor=world.a1, from_contact=world.a1_shared, to_contact=world.a2_shared, kind="colleague")
    assert Relationship.objects.count() == 3


def test_update_checks_strength_and_duplicates_and_delete_removes(world) -> None:
    rel = relationship_create(actor=world.a1, from_contact=world.a1_shared, to_contact=world.a2_shared, kind="friend")
    relationship_create(actor=world.a1, from_contact=world.a1_shared, to_contact=world.a2_shared, kind="family")
    with pytest.raises(ValidationError):
        relationship_update(relationship=rel, actor=world.a1, strength=9)
    rel.refresh_from_db()
    with pytest.raises(Conflict):
        relationship_update(relationship=rel, actor=world.a1, kind="family")
    rel.refresh_from_db()
    assert (rel.kind, rel.strength) == ("friend", 3)
    relationship_update(relationship=rel, actor=world.a1, strength=5, notes="close")
    rel.refresh_from_db()
    assert (rel.strength, rel.notes) == (5, "close")
    relationship_delete(relationship=rel, actor=world.a1)
    assert Relationship.objects.count() == 1


def test_contact_relationships_query_count_is_bounded(world, django_assert_max_num_queries) -> None:
    for _ in range(8):
        other = ContactFactory(owner=world.a1, team=world.team_a)
        relationship_create(actor=world.a1, from_contact=world.a1_shared, to_contact=other, kind="colleague")
    with django_assert_max_num_queries(3):
        rows = contact_relationships(user=world.a1, contact=world.a1_shared)
        assert len({r.other.display_name for r in rows}) >= 1
    assert len(rows) == 8


def test_contact_page_adds_and_removes_a_link(client, world) -> None:
    client.force_login(world.a1)
    url = reverse("contacts:relationship_add", args=[world.a1_shared.pk])
    response = client.post(
        url, {"rel-kind": "friend", "rel-other": f"#{world.a2_shared.pk}", "rel-direction": "out", "rel-strength": "4"},
        HTTP_HX_REQUEST="true",
    )  # fmt: skip
    assert response.status_code == 200
    assert "Amy Teamwide" in response.content.decode()
    rel = Relationship.objects.get()
    assert (rel.from_contact, rel.to_contact, rel.strength) == (world.a1_shared, world.a2_shared, 4)
    page = client.get(reverse("contacts:detail", args=[world.a2_shared.pk])).content.decode()
    assert "Ann Shared" in page
    client.post(reverse("contacts:relationship_delete", args=[world.a1_shared.pk, rel.pk]))
    assert not Relationship.objects.exists()


def test_contact_page_reports_invisible_or_self_link_on_the_form(client, world) -> None:
    client.force_login(world.a1)
    url = reverse("contacts:relationship_add", args=[world.a1_shared.pk])
    for other in (f"#{world.b1_shared.pk}", f"#{world.a1_shared.pk}", "Nobody Atall"):
        response = client.post(
            url,
            {"rel-kind": "friend", "rel-other": other, "rel-direction": "out", "rel-strength": "3"},
            HTTP_HX_REQUEST="true",
        )
        assert response.status_code == 200
        assert 'role="alert"' in response.content.decode()
    assert not Relationship.objects.exists()


def test_api_crud_and_visibility(api_client, world, django_assert_max_num_queries) -> None:
    api_client.force_authenticate(world.a1)
    created = api_client.post(
        "/api/v1/relationships/",
        {"from_contact": world.a1_shared.pk, "to_contact": world.a2_shared.pk, "kind": "advisor", "strength": 2},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["to_contact_name"] == "Amy Teamwide"
    rel_id = created.json()["id"]
    duplicate = api_client.post(
        "/api/v1/relationships/",
        {"from_contact": world.a1_shared.pk, "to_contact": world.a2_shared.pk, "kind": "advisor"},
        format="json",
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "duplicate_relationship"
    invisible = api_client.post(
        "/api/v1/relationships/",
        {"from_contact": world.a1_shared.pk, "to_contact": world.b1_shared.pk, "kind": "friend"},
        format="json",
    )
    assert invisible.status_code == 400
    assert "to_contact" in invisible.json()["error"]["fields"]
    selfie = api_client.post(
        "/api/v1/relationships/",
        {"from_contact": world.a1_shared.pk, "to_contact": world.a1_shared.pk, "kind": "friend"},
        format="json",
    )
    assert selfie.status_code == 400
    assert selfie.json()["error"]["code"] == "self_link"
    with django_assert_max_num_queries(6):
        listed = api_client.get(f"/api/v1/relationships/?contact={world.a2_shared.pk}")
    assert [r["id"] for r in listed.json()["results"]] == [rel_id]
    patched = api_client.patch(f"/api/v1/relationships/{rel_id}/", {"strength": 5}, format="json")
    assert patched.status_code == 200 and patched.json()["strength"] == 5
    api_client.force_authenticate(world.b1)
    assert api_client.get(f"/api/v1/relationships/{rel_id}/").status_code == 404
    assert api_client.delete(f"/api/v1/relationships/{rel_id}/").status_code == 404
    api_client.force_authenticate(world.a1)
    assert api_client.delete(f"/api/v1/relationships/{rel_id}/").status_code == 204
    assert not Relationship.objects.exists()


def test_merge_handler_moves_edges_reports_collisions_and_restores(world) -> None:
    from contacts.profile_registrations import relationships_move, relationships_restore

    primary, duplicate = world.a1_shared, world.a2_shared
    x, y = ContactFactory(owner=world.a1, team=world.team_a), ContactFactory(owner=world.a1, team=world.team_a)
    existing = Relationship.objects.create(from_contact=primary, to_contact=x, kind="friend")
    clash = Relationship.objects.create(from_contact=duplicate, to_contact=x, kind="friend", notes="keep me")
    movable = Relationship.objects.create(from_contact=y, to_contact=duplicate, kind="reports_to", strength=5)
    between = Relationship.objects.create(from_contact=duplicate, to_contact=primary, kind="colleague")

    record, conflicts = relationships_move(primary, duplicate)
    assert len(conflicts) == 2
    assert any(f"#{clash.pk}" in c and "already exists" in c for c in conflicts)
    assert any(f"#{between.pk}" in c and "itself" in c for c in conflicts)
    assert set(Relationship.objects.values_list("id", "from_contact_id", "to_contact_id")) == {
        (existing.pk, primary.pk, x.pk),
        (movable.pk, y.pk, primary.pk),
    }

    assert relationships_restore(primary, duplicate, record) == []
    assert set(Relationship.objects.values_list("id", "from_contact_id", "to_contact_id", "kind", "notes")) == {
        (existing.pk, primary.pk, x.pk, "friend", ""),
        (clash.pk, duplicate.pk, x.pk, "friend", "keep me"),
        (movable.pk, y.pk, duplicate.pk, "reports_to", ""),
        (between.pk, duplicate.pk, primary.pk, "colleague", ""),
    }


def test_merge_restore_reports_edges_deleted_since(world) -> None:
    from contacts.profile_registrations import relationships_move, relationships_restore

    edge = Relationship.objects.create(from_contact=world.a2_shared, to_contact=world.a1_private, kind="friend")
    record, _ = relationships_move(world.a1_shared, world.a2_shared)
    edge_id = edge.pk
    Relationship.objects.filter(pk=edge_id).delete()
    assert relationships_restore(world.a1_shared, world.a2_shared, record) == [
        f"Relationship #{edge_id} was deleted after the merge and was not restored."
    ]


def test_personal_data_export_and_erase(world) -> None:
    from contacts.profile_registrations import relationships_erase, relationships_export

    Relationship.objects.create(from_contact=world.a1_shared, to_contact=world.a2_shared, kind="friend", notes="n")
    Relationship.objects.create(from_contact=world.a1_private, to_contact=world.a1_shared, kind="advisor")
    Relationship.objects.create(from_contact=world.a1_private, to_contact=world.a2_shared, kind="advisor")
    exported = relationships_export(world.a1_shared)
    assert {(e["direction"], e["other_contact_id"], e["kind"]) for e in exported} == {
        ("outgoing", world.a2_shared.pk, "friend"),
        ("incoming", world.a1_private.pk, "advisor"),
    }
    assert relationships_erase(world.a1_shared) == 2
    assert Relationship.objects.count() == 1
    assert not Relationship.history.filter(from_contact_id=world.a1_shared.pk).exists()


def test_api_refuses_to_move_a_link_to_other_contacts(api_client, world) -> None:
    rel = relationship_create(actor=world.a1, from_contact=world.a1_shared, to_contact=world.a2_shared, kind="friend")
    api_client.force_authenticate(world.a1)
    response = api_client.patch(f"/api/v1/relationships/{rel.pk}/", {"to_contact": world.a1_private.pk}, format="json")
    assert response.status_code == 400 and "to_contact" in response.json()["error"]["fields"]
    rel.refresh_from_db()
    assert rel.to_contact == world.a2_shared


def test_bad_contact_ids_are_400_or_a_form_error_never_500(api_client, client, world) -> None:
    api_client.force_authenticate(world.a1)
    for url in ("/api/v1/relationships/", "/api/v1/life-events/", "/api/v1/consents/"):
        assert api_client.get(url, {"contact": "²"}).status_code == 400
    assert api_client.get(f"/api/v1/contacts/{world.a1_shared.pk}/timeline/", {"limit": "²"}).status_code == 200
    client.force_login(world.a1)
    url = reverse("contacts:relationship_add", args=[world.a1_shared.pk])
    response = client.post(url, {"other": "#²", "direction": "out", "kind": "colleague", "strength": "3"})
    assert response.status_code == 302
    assert not Relationship.objects.exists()
