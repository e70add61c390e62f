"""Custom fields: typed validation on the UI and the API, display on the contact page, admin-only definitions."""

from __future__ import annotations

import pytest
from django.urls import reverse

from contacts.models import Contact, CustomFieldDefinition

pytestmark = pytest.mark.django_db


@pytest.fixture
def fields(db: None) -> dict[str, CustomFieldDefinition]:
    return {
        "seats": CustomFieldDefinition.objects.create(key="seats", label="Seats", field_type="number"),
        "renewal": CustomFieldDefinition.objects.create(key="renewal", label="Renewal", field_type="date"),
        "plan": CustomFieldDefinition.objects.create(
            key="plan", label="Plan", field_type="choice", choices=["Basic", "Pro"]
        ),
        "vip": CustomFieldDefinition.objects.create(key="vip", label="VIP", field_type="boolean"),
    }


@pytest.mark.parametrize(
    ("key", "value"), [("seats", "many"), ("renewal", "31/12/2025"), ("plan", "Enterprise"), ("vip", "perhaps")]
)
def test_api_rejects_bad_typed_values_with_the_field_key(api_client, world, fields, key: str, value: str) -> None:
    world.a1_shared.custom_fields = {"seats": 3}
    world.a1_shared.save()
    api_client.force_authenticate(world.a1)
    response = api_client.patch(
        f"/api/v1/contacts/{world.a1_shared.pk}/", {"custom_fields": {key: value}}, format="json"
    )
    assert response.status_code == 400
    assert f"custom_fields.{key}" in response.json()["error"]["fields"]
    world.a1_shared.refresh_from_db()
    assert world.a1_shared.custom_fields == {"seats": 3}


def test_api_accepts_and_coerces_good_values(api_client, world, fields) -> None:
    api_client.force_authenticate(world.a1)
    response = api_client.patch(
        f"/api/v1/contacts/{world.a1_shared.pk}/",
        {"custom_fields": {"seats": "1,200", "renewal": "2025-12-31", "plan": "pro", "vip": "yes"}},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["custom_fields"] == {"seats": 1200, "renewal": "2025-12-31", "plan": "Pro", "vip": True}


def test_required_field_is_enforced_on_create(api_client, world, fields) -> None:
    CustomFieldDefinition.objects.create(key="region_code", label="Region code", required=True)
    api_client.force_authenticate(world.a1)
    response = api_client.post("/api/v1/contacts/", {"first_name": "New", "custom_fields": {}}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["custom_fields.region_code"] == ["Region code is required."]
    assert not Contact.objects.filter(first_name="New").exists()


@pytest.mark.parametrize(("key", "value"), [("seats", "many"), ("renewal", "tomorrow")])
def test_edit_form_shows_bad_typed_values_on_the_field(client, world, fields, key: str, value: str) -> None:
    client.force_login(world.a1)
    url = reverse("contacts:edit", args=[world.a1_shared.pk])
    data = {"first_name": "Ann", "last_name": "Changed", "lifecycle_stage": "lead", "visibility": "team", key: value}
    data[f"cf_{key}"] = value
    response = client.post(url, data)
    assert response.status_code == 400
    form = response.context["form"]
    assert f"cf_{key}" in form.errors
    world.a1_shared.refresh_from_db()
    assert world.a1_shared.last_name == "Shared"


def test_edit_form_rejects_an_unknown_choice(client, world, fields) -> None:
    client.force_login(world.a1)
    data = {"first_name": "Ann", "lifecycle_stage": "lead", "visibility": "team", "cf_plan": "Enterprise"}
    response = client.post(reverse("contacts:edit", args=[world.a1_shared.pk]), data)
    assert response.status_code == 400
    assert "cf_plan" in response.context["form"].errors


def test_contact_page_shows_values_with_labels_and_types(client, world, fields) -> None:
    world.a1_shared.custom_fields = {"seats": 12, "vip": True}
    world.a1_shared.save()
    client.force_login(world.a1)
    page = client.get(reverse("contacts:detail", args=[world.a1_shared.pk])).content.decode()
    assert "Seats" in page and "12" in page and "Number" in page
    assert "VIP" in page and "Yes" in page


def test_definitions_readable_by_all_writable_by_admins_only(api_client, world, fields) -> None:
    api_client.force_authenticate(world.a1)
    assert len(api_client.get("/api/v1/custom-fields/").json()["results"]) == 4
    body = {"key": "nps", "label": "NPS", "field_type": "number"}
    assert api_client.post("/api/v1/custom-fields/", body, format="json").status_code == 403
    api_client.force_authenticate(world.admin)
    assert api_client.post("/api/v1/custom-fields/", body, format="json").status_code == 201
    no_choices = api_client.post(
        "/api/v1/custom-fields/", {"key": "tier2", "label": "T", "field_type": "choice"}, format="json"
    )
    assert no_choices.status_code == 400 and "choices" in no_choices.json()["error"]["fields"]
