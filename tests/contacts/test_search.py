"""The one search box: contacts and companies by name, e-mail, phone in any format, handle and company."""

from __future__ import annotations

import pytest
from django.urls import reverse

from contacts.models import ContactIdentity
from contacts.selectors import contact_search_ids
from contacts.selectors.search import global_search
from contacts.services import company_create, contact_create, identity_attach
from tests.contacts.factories import CompanyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def jane(world):  # type: ignore[no-untyped-def]
    acme = company_create(actor=world.a1, name="Acme Rockets", domains=["acme-rockets.com"], team=world.team_a)
    return contact_create(
        actor=world.a1, first_name="Jane", last_name="Doorman", company=acme, team=world.team_a,
        identities=[
            {"kind": "email", "value": "Jane.Doorman@acme-rockets.com"},
            {"kind": "phone", "value": "(617) 555-0101"},
            {"kind": "twitter", "value": "@JaneRockets"},
        ],
    )  # fmt: skip


@pytest.mark.parametrize(
    "typed",
    [
        "Jane", "jan", "door", "Jane Door", "jane.doorman@", "jane.doorman@acme-rockets.com", "JANE.DOORMAN@ACME",
        "(617) 555-0101", "617-555-01", "+1 617 555", "6175550101", "+16175550101", "617.555.0101",
        "@janerockets", "JaneRock", "Acme", "acme rock",
    ],
)  # fmt: skip
def test_finds_contact_by_name_email_phone_handle_and_company(world, jane, typed: str) -> None:  # type: ignore[no-untyped-def]
    assert jane.pk in contact_search_ids(user=world.a1, query=typed)


def test_international_phone_typed_with_00_prefix(world) -> None:  # type: ignore[no-untyped-def]
    london = contact_create(
        actor=world.a1, first_name="Liz", identities=[{"kind": "phone", "value": "+44 20 7946 0958"}]
    )
    for typed in ("0044 20 7946", "+44 20 79", "00442079460958", "+44 (0)20 7946"[:9]):
        assert london.pk in contact_search_ids(user=world.a1, query=typed), typed


def test_search_respects_visibility(world, jane) -> None:  # type: ignore[no-untyped-def]
    # Team A's contact: rep a2 and manager ma see it, rep b1 of team B does not.
    for user in (world.a1, world.a2, world.ma, world.admin):
        assert jane.pk in contact_search_ids(user=user, query="(617) 555-0101")
    for typed in ("Jane", "jane.doorman@", "(617) 555-0101", "@janerockets", "Acme"):
        assert contact_search_ids(user=world.b1, query=typed) == []
        assert global_search(user=world.b1, query=typed).empty


def test_private_contact_is_found_only_by_its_owner(world) -> None:  # type: ignore[no-untyped-def]
    assert world.a1_private.pk in contact_search_ids(user=world.a1, query="Abe Priv")
    assert world.a1_private.pk not in contact_search_ids(user=world.a2, query="Abe Priv")
    assert world.a1_private.pk in contact_search_ids(user=world.ma, query="Abe Priv")  # manager of team A


def test_same_box_finds_companies_by_name_and_domain(world, jane) -> None:  # type: ignore[no-untyped-def]
    other = CompanyFactory(name="Acme Other", owner=world.b1, team=world.team_b)
    for typed in ("acme", "Acme Rock", "acme-rockets.com"):
        names = [c.name for c in global_search(user=world.a1, query=typed).companies]
        assert "Acme Rockets" in names, typed
        assert other.name not in names


def test_empty_and_punctuation_only_queries_find_nothing(world, jane) -> None:  # type: ignore[no-untyped-def]
    for typed in ("", "   ", "---", "()", "'"):
        assert global_search(user=world.a1, query=typed).empty


def test_search_page_lists_contacts_with_company_and_email_in_bounded_queries(
    client, world, jane, django_assert_max_num_queries
) -> None:  # type: ignore[no-untyped-def]
    for n in range(30):
        contact_create(actor=world.a1, first_name="Jane", last_name=f"Clone{n}", company=jane.company,
                       identities=[{"kind": "email", "value": f"jane{n}@acme-rockets.com"}])  # fmt: skip
    client.force_login(world.a1)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("contacts:search"), {"q": "jane"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "Jane Doorman" in body and "Jane Clone29" in body
    assert "Jane.Doorman@acme-rockets.com" in body
    assert "Acme Rockets" in body


def test_live_results_are_a_fragment(client, world, jane) -> None:  # type: ignore[no-untyped-def]
    client.force_login(world.a1)
    response = client.get(reverse("contacts:search"), {"q": "door", "live": "1"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body and "Jane Doorman" in body
    assert reverse("contacts:detail", args=[jane.pk]) in body


def test_invisible_matches_do_not_leak_through_the_page(client, world, jane) -> None:  # type: ignore[no-untyped-def]
    client.force_login(world.b1)
    body = client.get(reverse("contacts:search"), {"q": "jane"}).content.decode()
    assert "Jane Doorman" not in body and "Acme Rockets" not in body


def test_search_api(api_client, world, jane) -> None:  # type: ignore[no-untyped-def]
    api_client.force_authenticate(world.a1)
    data = api_client.get("/api/v1/search/", {"q": "617 555"}).json()
    assert [c["id"] for c in data["contacts"]] == [jane.pk]
    assert data["contacts"][0]["email"] == "Jane.Doorman@acme-rockets.com"
    api_client.force_authenticate(world.b1)
    assert api_client.get("/api/v1/search/", {"q": "617 555"}).json() == {"contacts": [], "companies": []}


def test_identity_added_later_is_searchable(world) -> None:  # type: ignore[no-untyped-def]
    contact = contact_create(actor=world.a1, first_name="Late")
    identity_attach(contact=contact, actor=world.a1, kind=ContactIdentity.Kind.EMAIL, value="late.bloomer@x.org")
    assert contact.pk in contact_search_ids(user=world.a1, query="late.bloomer@")
    assert contact.pk in contact_search_ids(user=world.a1, query="bloomer")


def test_a_nul_character_in_the_search_text_is_ignored_not_a_500(client, api_client, world) -> None:  # type: ignore[no-untyped-def]
    client.force_login(world.a1)
    api_client.force_authenticate(world.a1)
    for text in ("a\x00@b.com", "@a\x00b"):
        assert client.get(reverse("contacts:search"), {"q": text}).status_code == 200
        assert client.get(reverse("contacts:list"), {"q": text}).status_code == 200
        assert api_client.get("/api/v1/search/", {"q": text}).status_code == 200
        assert api_client.get("/api/v1/contacts/", {"q": text}).status_code == 200
