"""Saved contact-list views: own, shared with the owner's teams, invisible to other teams, clear errors."""

from __future__ import annotations

import pytest
from django.urls import reverse

from contacts.models import SavedView
from contacts.selectors.saved_views import saved_view_list
from contacts.services.saved_views import saved_view_create, saved_view_delete
from crm.errors import Conflict, DomainError, NotFound

pytestmark = pytest.mark.django_db


def test_own_and_shared_views_are_listed_other_teams_are_not(world) -> None:  # type: ignore[no-untyped-def]
    mine = saved_view_create(owner=world.a1, name="My leads", filters={"lifecycle_stage": "lead"})
    shared = saved_view_create(owner=world.a2, name="Team customers", filters={"lifecycle_stage": "customer"},
                               shared=True)  # fmt: skip
    private = saved_view_create(owner=world.a2, name="A2 private", filters={"tier": "A"})
    other_team = saved_view_create(owner=world.b1, name="B shared", filters={"tag": "vip"}, shared=True)
    assert set(saved_view_list(user=world.a1)) == {mine, shared}
    assert set(saved_view_list(user=world.a2)) == {shared, private}
    assert set(saved_view_list(user=world.ma)) == {shared}
    assert set(saved_view_list(user=world.b1)) == {other_team}


def test_unknown_filter_key_is_a_clear_error_and_nothing_is_saved(world) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DomainError) as exc:
        saved_view_create(owner=world.a1, name="Bad", filters={"stage": "lead"})
    assert "Unknown filter 'stage'" in exc.value.message and "stage" in exc.value.fields
    with pytest.raises(DomainError) as exc:
        saved_view_create(owner=world.a1, name="Bad", filters={"lifecycle_stage": "zombie"})
    assert "lifecycle_stage" in exc.value.fields
    with pytest.raises(DomainError):
        saved_view_create(owner=world.a1, name="Bad", filters={"last_touch_before": "yesterday-ish"})
    with pytest.raises(DomainError):
        saved_view_create(owner=world.a1, name="  ", filters={})
    assert not SavedView.objects.exists()


def test_duplicate_name_per_owner_is_a_conflict_but_others_may_reuse_it(world) -> None:  # type: ignore[no-untyped-def]
    saved_view_create(owner=world.a1, name="Hot", filters={"tier": "A"})
    with pytest.raises(Conflict) as exc:
        saved_view_create(owner=world.a1, name="Hot", filters={"tier": "B"})
    assert 'already have a view named "Hot"' in exc.value.message
    assert SavedView.objects.get(owner=world.a1, name="Hot").filters == {"tier": "A"}
    saved_view_create(owner=world.a2, name="Hot", filters={"tier": "B"})


def test_only_the_owner_deletes(world) -> None:  # type: ignore[no-untyped-def]
    view = saved_view_create(owner=world.a1, name="Shared", filters={}, shared=True)
    with pytest.raises(NotFound):
        saved_view_delete(saved_view=view, actor=world.a2)
    saved_view_delete(saved_view=view, actor=world.a1)
    assert not SavedView.objects.exists()


def test_save_view_from_list_page_and_reopen_it(client, world) -> None:  # type: ignore[no-untyped-def]
    client.force_login(world.a1)
    response = client.post(
        reverse("contacts:saved_view_create"),
        {"name": "Ann's list", "query": "q=ann&lifecycle_stage=lead&after=99", "shared": "on"},
        follow=True,
    )
    assert response.status_code == 200
    assert "Saved the view" in response.content.decode()
    view = SavedView.objects.get(owner=world.a1)
    assert view.filters == {"q": "ann", "lifecycle_stage": "lead"} and view.shared
    body = client.get(reverse("contacts:list")).content.decode()
    assert "Ann&#x27;s list" in body and "q=ann&amp;lifecycle_stage=lead" in body


def test_bad_view_from_page_shows_error_and_saves_nothing(client, world) -> None:  # type: ignore[no-untyped-def]
    client.force_login(world.a1)
    saved_view_create(owner=world.a1, name="Dup", filters={})
    body = client.post(reverse("contacts:saved_view_create"), {"name": "Dup", "query": ""}, follow=True)
    assert "already have a view" in body.content.decode()
    body = client.post(reverse("contacts:saved_view_create"), {"name": "X", "query": "bogus=1"}, follow=True)
    assert "Unknown filter" in body.content.decode()
    assert SavedView.objects.count() == 1


def test_delete_from_page(client, world) -> None:  # type: ignore[no-untyped-def]
    view = saved_view_create(owner=world.a1, name="Gone", filters={}, shared=True)
    client.force_login(world.a2)
    assert client.post(reverse("contacts:saved_view_delete", args=[view.pk])).status_code == 404
    client.force_login(world.a1)
    response = client.post(reverse("contacts:saved_view_delete", args=[view.pk]), follow=True)
    assert "Deleted the view &quot;Gone&quot;" in response.content.decode()


def test_api_crud_and_errors(api_client, world) -> None:  # type: ignore[no-untyped-def]
    api_client.force_authenticate(world.a1)
    created = api_client.post("/api/v1/saved-views/", {"name": "API", "filters": {"tier": "A"}, "shared": True},
                              format="json")  # fmt: skip
    assert created.status_code == 201 and created.json()["owner"] == world.a1.pk
    dup = api_client.post("/api/v1/saved-views/", {"name": "API", "filters": {}}, format="json")
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "duplicate_name"
    bad = api_client.post("/api/v1/saved-views/", {"name": "Bad", "filters": {"nope": "1"}}, format="json")
    assert bad.status_code == 400 and "nope" in bad.json()["error"]["fields"]
    api_client.force_authenticate(world.a2)
    assert [v["name"] for v in api_client.get("/api/v1/saved-views/").json()["results"]] == ["API"]
    assert api_client.delete(f"/api/v1/saved-views/{created.json()['id']}/").status_code == 404
    api_client.force_authenticate(world.b1)
    assert api_client.get(f"/api/v1/saved-views/{created.json()['id']}/").status_code == 404
    api_client.force_authenticate(world.a1)
    assert api_client.delete(f"/api/v1/saved-views/{created.json()['id']}/").status_code == 204


def test_a_nul_character_in_a_saved_view_is_dropped_not_a_500(client, api_client, world) -> None:  # type: ignore[no-untyped-def]
    client.force_login(world.a1)
    client.post(reverse("contacts:saved_view_create"), {"name": "Lea\x00ds", "query": "q=a%00b&tier=A"})
    assert SavedView.objects.get(owner=world.a1).name == "Leads"
    assert SavedView.objects.get(owner=world.a1).filters == {"q": "ab", "tier": "A"}
    api_client.force_authenticate(world.a1)
    response = api_client.post("/api/v1/saved-views/", {"name": "API", "filters": {"q": "x\x00y"}}, format="json")
    assert response.status_code == 201 and response.json()["filters"] == {"q": "xy"}
