"""The visibility matrix: for each role, which contacts the list, the detail, the API and search return."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.selectors import visible
from contacts.models import Contact
from contacts.selectors import contact_search_ids

ALL = {"a1_shared", "a1_private", "a2_shared", "a2_private", "b1_shared"}
EXPECTED = {
    # a rep: what they own, plus what their team shares
    "a1": {"a1_shared", "a1_private", "a2_shared"},
    "a2": {"a1_shared", "a2_shared", "a2_private"},
    "b1": {"b1_shared"},
    # a manager: everything owned by members of the teams they manage
    "ma": {"a1_shared", "a1_private", "a2_shared", "a2_private"},
    # an admin: everything
    "root": ALL,
}

pytestmark = pytest.mark.django_db


def _names(world, ids: set[int]) -> set[str]:
    return {key for key, contact in world.contacts.items() if contact.pk in ids}


@pytest.mark.parametrize("username", sorted(EXPECTED))
def test_selector_applies_policy(world, username: str) -> None:
    user = getattr(world, username if username != "root" else "admin")
    ids = set(visible(Contact.objects.all(), user).values_list("id", flat=True))
    assert _names(world, ids) == EXPECTED[username]


@pytest.mark.parametrize("username", sorted(EXPECTED))
def test_list_page_shows_only_visible_contacts(world, client, username: str, django_assert_max_num_queries) -> None:
    user = getattr(world, username if username != "root" else "admin")
    client.force_login(user)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("contacts:list"))
    assert response.status_code == 200
    shown = {c.pk for c in response.context["contacts"]}
    assert _names(world, shown) == EXPECTED[username]


@pytest.mark.parametrize("username", sorted(EXPECTED))
def test_detail_page_is_404_for_invisible_contacts(world, client, username: str) -> None:
    user = getattr(world, username if username != "root" else "admin")
    client.force_login(user)
    for key, contact in world.contacts.items():
        response = client.get(reverse("contacts:detail", args=[contact.pk]))
        assert response.status_code == (200 if key in EXPECTED[username] else 404), key


@pytest.mark.parametrize("username", sorted(EXPECTED))
def test_api_list_and_detail_apply_policy(world, api_client, username: str, django_assert_max_num_queries) -> None:
    user = getattr(world, username if username != "root" else "admin")
    api_client.force_authenticate(user)
    with django_assert_max_num_queries(10):
        response = api_client.get("/api/v1/contacts/")
    assert response.status_code == 200
    assert _names(world, {row["id"] for row in response.json()["results"]}) == EXPECTED[username]
    for key, contact in world.contacts.items():
        detail = api_client.get(f"/api/v1/contacts/{contact.pk}/")
        # Never 403: a forbidden record must look exactly like a missing one.
        assert detail.status_code == (200 if key in EXPECTED[username] else 404), key
        if detail.status_code == 404:
            assert detail.json() == {"error": {"code": "not_found", "message": "No such contact.", "fields": {}}}


@pytest.mark.parametrize("username", sorted(EXPECTED))
def test_search_applies_policy(world, client, api_client, username: str) -> None:
    user = getattr(world, username if username != "root" else "admin")
    # Every fixture contact's first name starts with "A" or "B"; search each by its unique last name.
    for key, contact in world.contacts.items():
        found = set(contact_search_ids(user=user, query=contact.last_name))
        assert (contact.pk in found) == (key in EXPECTED[username]), key
    api_client.force_authenticate(user)
    response = api_client.get("/api/v1/contacts/", {"q": world.a2_private.last_name})
    assert bool(response.json()["results"]) == ("a2_private" in EXPECTED[username])
    client.force_login(user)
    page = client.get(reverse("contacts:list"), {"q": world.b1_shared.last_name})
    assert bool(page.context["contacts"]) == ("b1_shared" in EXPECTED[username])


def test_rep_cannot_attach_identity_to_other_teams_contact(world, api_client) -> None:
    api_client.force_authenticate(world.a1)
    response = api_client.post(
        f"/api/v1/contacts/{world.b1_shared.pk}/identities/", {"kind": "email", "value": "x@example.com"}
    )
    assert response.status_code == 404


def test_rep_cannot_move_contact_to_invisible_company(world, api_client) -> None:
    from tests.contacts.factories import CompanyFactory

    hidden = CompanyFactory(owner=world.b1, team=world.team_b)
    api_client.force_authenticate(world.a1)
    response = api_client.patch(f"/api/v1/contacts/{world.a1_shared.pk}/", {"company": hidden.pk}, format="json")
    assert response.status_code == 400
    assert "company" in response.json()["error"]["fields"]


def test_deactivated_user_sees_nothing(world) -> None:
    world.a1.is_active = False
    assert not visible(Contact.objects.all(), world.a1).exists()


def test_rep_lists_only_teammates_as_assignable_users(world, api_client) -> None:
    api_client.force_authenticate(world.a1)
    response = api_client.get("/api/v1/users/")
    assert response.status_code == 200
    assert {row["username"] for row in response.json()["results"]} == {"a1", "a2", "ma"}
