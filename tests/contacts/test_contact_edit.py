"""Contact create and edit pages: standard fields, custom fields, service errors on the form, flash messages."""

from __future__ import annotations

import pytest
from django.urls import reverse

from contacts.models import Contact, CustomFieldDefinition, LifeEvent
from contacts.services import identity_attach
from tests.contacts.factories import CompanyFactory

pytestmark = pytest.mark.django_db


def test_create_page_creates_contact_with_identities_and_custom_fields(client, world) -> None:
    CustomFieldDefinition.objects.create(key="seats", label="Seats", field_type="number")
    acme = CompanyFactory(name="Acme", owner=world.a1, team=world.team_a)
    client.force_login(world.a1)
    page = client.get(reverse("contacts:create"))
    assert page.status_code == 200 and "New contact" in page.content.decode()
    assert "Seats" in page.content.decode()
    response = client.post(
        reverse("contacts:create"),
        {
            "first_name": "Nina", "last_name": "New", "company": "acme", "email": "Nina@Example.com",
            "lifecycle_stage": "prospect", "visibility": "team", "tags": "vip, warm", "cf_seats": "25",
        },
        follow=True,
    )  # fmt: skip
    contact = Contact.objects.get(first_name="Nina")
    assert response.redirect_chain[-1][0] == reverse("contacts:detail", args=[contact.pk])
    assert "Contact Nina New created." in response.content.decode()
    assert contact.company == acme and contact.owner == world.a1 and contact.tags == ["vip", "warm"]
    assert contact.custom_fields == {"seats": 25}
    assert contact.identities.get().normalized == "nina@example.com"


def test_create_page_shows_identity_conflict_and_creates_nothing(client, world) -> None:
    identity_attach(contact=world.b1_shared, actor=world.b1, kind="email", value="taken@example.com")
    client.force_login(world.a1)
    response = client.post(
        reverse("contacts:create"),
        {"first_name": "Dup", "email": "taken@example.com", "lifecycle_stage": "lead", "visibility": "team"},
    )
    assert response.status_code == 400
    assert "Already belongs to another contact." in response.content.decode()  # b1's contact is not named to a1
    assert not Contact.objects.filter(first_name="Dup").exists()


def test_create_page_rejects_unknown_or_invisible_company(client, world) -> None:
    CompanyFactory(name="Hidden Co", owner=world.b1, team=world.team_b)
    client.force_login(world.a1)
    response = client.post(
        reverse("contacts:create"),
        {"first_name": "X", "company": "Hidden Co", "lifecycle_stage": "lead", "visibility": "team"},
    )
    assert response.status_code == 400
    assert "No company named" in response.content.decode()
    assert not Contact.objects.filter(first_name="X").exists()


def test_edit_page_saves_and_records_company_and_address_change(client, world) -> None:
    old = CompanyFactory(name="Old Co", owner=world.a1, team=world.team_a)
    new = CompanyFactory(name="New Co", owner=world.a1, team=world.team_a)
    contact = world.a1_shared
    contact.company, contact.city = old, "Berlin"
    contact.save()
    CustomFieldDefinition.objects.create(key="plan", label="Plan", field_type="choice", choices=["Basic", "Pro"])
    client.force_login(world.a1)
    page = client.get(reverse("contacts:edit", args=[contact.pk])).content.decode()
    assert 'value="Old Co"' in page and "Edit Ann Shared" in page
    response = client.post(
        reverse("contacts:edit", args=[contact.pk]),
        {
            "first_name": "Ann", "last_name": "Shared", "company": "New Co", "city": "Paris", "country": "fr",
            "lifecycle_stage": "customer", "visibility": "team", "cf_plan": "Pro",
        },
        follow=True,
    )  # fmt: skip
    assert "Contact Ann Shared saved." in response.content.decode()
    contact.refresh_from_db()
    assert (contact.company, contact.city, contact.country, contact.lifecycle_stage) == (new, "Paris", "FR", "customer")
    assert contact.custom_fields == {"plan": "Pro"}
    assert set(LifeEvent.objects.filter(contact=contact).values_list("kind", "source")) == {
        ("job_change", "auto"),
        ("move", "auto"),
    }


def test_edit_page_of_invisible_contact_is_404(client, world) -> None:
    client.force_login(world.a1)
    assert client.get(reverse("contacts:edit", args=[world.b1_shared.pk])).status_code == 404
    assert client.post(reverse("contacts:edit", args=[world.b1_shared.pk]), {"first_name": "Z"}).status_code == 404


def test_list_page_has_new_contact_button(client, world) -> None:
    client.force_login(world.a1)
    page = client.get(reverse("contacts:list")).content.decode()
    assert f'href="{reverse("contacts:create")}"' in page


def test_contact_page_has_edit_link_and_bounded_queries(client, world, django_assert_max_num_queries) -> None:
    client.force_login(world.a1)
    url = reverse("contacts:detail", args=[world.a1_shared.pk])
    client.get(url)
    with django_assert_max_num_queries(40):
        page = client.get(url).content.decode()
    assert reverse("contacts:edit", args=[world.a1_shared.pk]) in page
    assert "Who can introduce you" in page
