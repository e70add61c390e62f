"""CSV export of filtered lists (formula-safe, visibility applied, keyset batches) and vCard export."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from contacts.models import CustomFieldDefinition
from contacts.services import exports
from contacts.services.exports import contact_vcard, vcard_escape, vcard_fold
from tests.contacts.factories import CompanyFactory, ContactFactory, IdentityFactory


def _rows(response) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(body[1:])))


def test_export_neutralizes_spreadsheet_formulas(world, client) -> None:
    evil = ContactFactory(
        first_name="=cmd|' /C calc'!A0", last_name="+SUM(1)", title="@import", notes="\tTabbed", owner=world.a1,
        team=world.team_a,
    )  # fmt: skip
    IdentityFactory(contact=evil, kind="phone", value="+14155550100", normalized="+14155550100")
    ContactFactory(first_name="-minus", last_name="\rcr", owner=world.a1, team=world.team_a)
    client.force_login(world.a1)
    rows = {r["id"]: r for r in _rows(client.get(reverse("contacts:export_csv")))}
    row = rows[str(evil.pk)]
    assert row["first_name"] == "'=cmd|' /C calc'!A0"
    assert row["last_name"] == "'+SUM(1)"
    assert row["title"] == "'@import"
    assert row["notes"] == "'\tTabbed"
    assert row["phone"] == "'+14155550100"
    assert any(r["first_name"] == "'-minus" and r["last_name"] == "'\rcr" for r in rows.values())


def test_export_applies_visibility(world, client) -> None:
    expected = {
        world.a1: {"a1_shared", "a1_private", "a2_shared"},
        world.b1: {"b1_shared"},
        world.ma: {"a1_shared", "a1_private", "a2_shared", "a2_private"},
        world.admin: set(world.contacts),
    }
    for user, names in expected.items():
        client.force_login(user)
        ids = {r["id"] for r in _rows(client.get(reverse("contacts:export_csv")))}
        assert ids == {str(world.contacts[n].pk) for n in names}, user


def test_export_applies_the_list_filters(world, client) -> None:
    ContactFactory(first_name="Zed", last_name="Customer", lifecycle_stage="customer", tags=["vip"], owner=world.a1,
                   team=world.team_a)  # fmt: skip
    ContactFactory(first_name="Zoe", last_name="Lead", lifecycle_stage="lead", tags=["vip"], owner=world.a1,
                   team=world.team_a)  # fmt: skip
    client.force_login(world.a1)
    rows = _rows(client.get(reverse("contacts:export_csv"), {"lifecycle_stage": "customer", "tag": "vip"}))
    assert [r["first_name"] for r in rows] == ["Zed"]
    rows = _rows(client.get(reverse("contacts:export_csv"), {"q": "Zoe"}))
    assert [r["first_name"] for r in rows] == ["Zoe"]


def test_export_has_identities_and_custom_fields(world, client) -> None:
    CustomFieldDefinition.objects.create(key="seats", label="Seats", field_type="number")
    company = CompanyFactory(name="Acme", owner=world.a1)
    contact = ContactFactory(first_name="Ida", company=company, custom_fields={"seats": 5}, owner=world.a1,
                             team=world.team_a)  # fmt: skip
    IdentityFactory(contact=contact, value="ida@acme.example", is_primary=True)
    IdentityFactory(contact=contact, value="ida@home.example")
    IdentityFactory(contact=contact, kind="twitter", value="@ida", normalized="@ida", handle="ida")
    client.force_login(world.a1)
    row = next(r for r in _rows(client.get(reverse("contacts:export_csv"))) if r["id"] == str(contact.pk))
    assert (row["email"], row["other_emails"], row["twitter"]) == ("ida@acme.example", "ida@home.example", "ida")
    assert (row["company"], row["custom:seats"]) == ("Acme", "5")


def test_export_streams_in_keyset_batches_with_bounded_queries(world, client, monkeypatch,
                                                                django_assert_max_num_queries) -> None:  # fmt: skip
    monkeypatch.setattr(exports, "EXPORT_BATCH", 3)
    for i in range(10):
        IdentityFactory(contact=ContactFactory(first_name=f"K{i}", owner=world.a1, team=world.team_a))
    client.force_login(world.a1)
    response = client.get(reverse("contacts:export_csv"))
    with django_assert_max_num_queries(20):
        rows = _rows(response)
    ids = [int(r["id"]) for r in rows]
    assert ids == sorted(ids) and len(ids) == 13


def test_contact_list_has_export_and_import_links_carrying_filters(world, client) -> None:
    client.force_login(world.a1)
    page = client.get(reverse("contacts:list"), {"lifecycle_stage": "customer"}).content.decode()
    assert f"{reverse('contacts:export_csv')}?lifecycle_stage=customer" in page
    assert reverse("contacts:import_upload") in page


def test_api_export_is_csv_and_respects_visibility(world, api_client) -> None:
    api_client.force_authenticate(world.b1)
    response = api_client.get("/api/v1/contact-exports/", HTTP_ACCEPT="text/csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert [r["id"] for r in rows] == [str(world.b1_shared.pk)]


# --- vCard ---


def test_vcard_escaping() -> None:
    assert vcard_escape("a,b;c\\d\ne") == "a\\,b\\;c\\\\d\\ne"


def test_vcard_folds_long_lines_at_75_octets_without_splitting_characters() -> None:
    folded = vcard_fold("NOTE:" + "é" * 100)
    lines = folded.split("\r\n")
    assert all(len(line.encode()) <= 75 for line in lines)
    assert all(line.startswith(" ") for line in lines[1:])
    assert "".join(line[1:] if i else line for i, line in enumerate(lines)) == "NOTE:" + "é" * 100


def test_vcard_of_a_contact(world, client) -> None:
    company = CompanyFactory(name="Smith, Jones & Co; Ltd", owner=world.a1)
    contact = ContactFactory(
        first_name="Mary", last_name="O'Brien", title="CEO", company=company, street="1 Main St", city="Springfield",
        country="US", notes="Likes tea;\nhates coffee", owner=world.a1, team=world.team_a,
    )  # fmt: skip
    IdentityFactory(contact=contact, value="mary@example.com", is_primary=True, label="work")
    IdentityFactory(contact=contact, kind="phone", value="(415) 555-0100", normalized="+14155550100")
    IdentityFactory(contact=contact, kind="website", value="https://obrien.example", normalized="obrien.example")
    client.force_login(world.a1)
    response = client.get(reverse("contacts:vcard", args=[contact.pk]))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/vcard")
    card = response.content.decode()
    assert card.startswith("BEGIN:VCARD\r\nVERSION:4.0\r\n") and card.endswith("END:VCARD\r\n")
    unfolded = card.replace("\r\n ", "")
    assert "FN:Mary O'Brien\r\n" in unfolded
    assert "N:O'Brien;Mary;;;\r\n" in unfolded
    assert "ORG:Smith\\, Jones & Co\\; Ltd\r\n" in unfolded
    assert "TITLE:CEO\r\n" in unfolded
    assert "EMAIL;TYPE=work;PREF=1:mary@example.com\r\n" in unfolded
    assert "TEL;VALUE=uri:tel:+14155550100\r\n" in unfolded
    assert "URL:https://obrien.example\r\n" in unfolded
    assert "ADR:;;1 Main St;Springfield;;;US\r\n" in unfolded
    assert "NOTE:Likes tea\\;\\nhates coffee\r\n" in unfolded
    assert all(len(line.encode()) <= 75 for line in card.split("\r\n"))


def test_vcard_of_an_invisible_contact_is_404(world, client) -> None:
    client.force_login(world.b1)
    assert client.get(reverse("contacts:vcard", args=[world.a1_shared.pk])).status_code == 404


def test_contact_page_has_vcard_button(world, client) -> None:
    client.force_login(world.a1)
    page = client.get(reverse("contacts:detail", args=[world.a1_shared.pk])).content.decode()
    assert reverse("contacts:vcard", args=[world.a1_shared.pk]) in page


@pytest.mark.parametrize("pk_kind", ["missing", "invisible"])
def test_api_vcard_hides_what_the_caller_cannot_see(world, api_client, pk_kind: str) -> None:
    api_client.force_authenticate(world.b1)
    pk = 999_999 if pk_kind == "missing" else world.a1_shared.pk
    assert api_client.get(f"/api/v1/contact-exports/{pk}/vcard/").status_code == 404


def test_api_vcard(world, api_client) -> None:
    api_client.force_authenticate(world.a1)
    response = api_client.get(f"/api/v1/contact-exports/{world.a1_shared.pk}/vcard/")
    assert response.status_code == 200 and b"FN:Ann Shared" in response.content
    assert contact_vcard(contact=world.a1_shared).startswith("BEGIN:VCARD")
