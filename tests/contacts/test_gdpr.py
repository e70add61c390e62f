"""GDPR: export everything about a person; erase them everywhere and leave an audit that names nothing personal."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from contacts.models import (
    Contact,
    ContactIdentity,
    DuplicateCandidate,
    ErasureRecord,
    ImportRowError,
    LifeEvent,
    MergeRecord,
)
from contacts.services import contact_update, identity_attach
from contacts.services.gdpr import NotAllowed, person_erase, person_export
from contacts.services.imports import import_job_create, import_job_process, import_job_start
from crm.errors import NotFound
from tests.contacts.factories import CompanyFactory, ContactFactory

SECRETS = ("Zelda", "Quixote", "zelda.q@example.com", "+14155550142", "zeldaq")


@pytest.fixture
def person(world) -> Contact:  # type: ignore[no-untyped-def]
    contact = ContactFactory(
        first_name="Zelda", last_name="Quixote", title="Explorer", owner=world.a1, team=world.team_a,
        custom_fields={"nickname": "Zeldaq"}, city="Oldtown",
    )  # fmt: skip
    identity_attach(contact=contact, actor=world.a1, kind="email", value="zelda.q@example.com", is_primary=True)
    identity_attach(contact=contact, actor=world.a1, kind="phone", value="(415) 555-0142")
    identity_attach(contact=contact, actor=world.a1, kind="twitter", value="@zeldaq")
    contact_update(contact=contact, actor=world.a1, company=CompanyFactory(name="Hyrule Inc"), city="Newtown")
    other = ContactFactory(first_name="Zed", last_name="Other", owner=world.a1, team=world.team_a)
    a, b = sorted([contact.pk, other.pk])
    DuplicateCandidate.objects.create(contact_a_id=a, contact_b_id=b, strength="weak", reason="similar name")
    MergeRecord.objects.create(primary=contact, duplicate_id_was=123456, duplicate_snapshot={"first_name": "Zelda"})
    # A failed import row that quoted her address is personal data too.
    job = import_job_create(actor=world.a1, file_name="x.csv", data=b"Email,Phone\nzelda.q@example.com,12\n")
    import_job_start(job=job, actor=world.a1, mapping=job.mapping, on_duplicate="skip")
    import_job_process(job_id=job.pk)
    assert ImportRowError.objects.count() == 1
    return contact


def test_export_contains_everything_held_about_the_person(world, person) -> None:
    data = person_export(contact=person, actor=world.a1)
    json.dumps(data)  # plain JSON
    sources = data["sources"]
    assert data["contact_id"] == person.pk
    assert sources["contacts.contact"]["first_name"] == "Zelda"
    assert sources["contacts.contact"]["custom_fields"] == {"nickname": "Zeldaq"}
    assert {i["normalized"] for i in sources["contacts.identities"]} == {
        "zelda.q@example.com", "+14155550142", "@zeldaq",
    }  # fmt: skip
    history = sources["contacts.history"]
    assert {h["city"] for h in history["contact"]} >= {"Oldtown", "Newtown"}
    assert len(history["identities"]) == 3
    assert len(sources["contacts.merges"]["duplicate_candidates"]) == 1
    assert sources["contacts.merges"]["merge_records"][0]["duplicate_snapshot"] == {"first_name": "Zelda"}
    assert sources["contacts.import_rows"][0]["raw"]["Email"] == "zelda.q@example.com"


def test_export_permissions(world, person) -> None:
    assert person_export(contact=person, actor=world.ma)["contact_id"] == person.pk  # manager
    assert person_export(contact=person, actor=world.admin)["contact_id"] == person.pk
    with pytest.raises(NotAllowed):
        person_export(contact=person, actor=world.a2)  # a teammate who sees her but does not own her
    with pytest.raises(NotFound):
        person_export(contact=person, actor=world.b1)


def test_export_download_from_the_contact_page(world, person, client) -> None:
    client.force_login(world.a1)
    page = client.get(reverse("contacts:detail", args=[person.pk])).content.decode()
    assert reverse("contacts:gdpr_export", args=[person.pk]) in page
    assert reverse("contacts:gdpr_erase", args=[person.pk]) not in page  # reps cannot erase
    response = client.get(reverse("contacts:gdpr_export", args=[person.pk]))
    assert response["Content-Type"] == "application/json" and "attachment" in response["Content-Disposition"]
    assert json.loads(response.content)["sources"]["contacts.contact"]["last_name"] == "Quixote"
    client.force_login(world.b1)
    assert client.get(reverse("contacts:gdpr_export", args=[person.pk])).status_code == 404


def test_erase_removes_everything_and_the_audit_names_nothing_personal(world, person) -> None:
    person_id = person.pk
    identity_ids = list(person.identities.values_list("id", flat=True))
    record = person_erase(contact=person, actor=world.ma, reason="Art. 17 request from zelda.q@example.com")
    assert not Contact.objects.filter(pk=person_id).exists()
    assert not ContactIdentity.objects.filter(pk__in=identity_ids).exists()
    assert not Contact.history.filter(id=person_id).exists()
    assert not ContactIdentity.history.filter(contact_id=person_id).exists()
    assert not LifeEvent.history.filter(contact_id=person_id).exists()
    assert not DuplicateCandidate.objects.exists() and not MergeRecord.objects.exists()
    assert not ImportRowError.objects.exists()
    assert record.contact_id_was == person_id and record.actor == world.ma
    assert record.counts["contacts.contact"] == 1 and record.counts["contacts.identities"] == 3
    audit = json.dumps({"counts": record.counts, "reason": record.reason, "str": str(record)}).lower()
    for secret in SECRETS:
        assert secret.lower() not in audit
    assert "[redacted]" in record.reason
    # No historical row anywhere still holds her data.
    for model in (Contact, ContactIdentity, LifeEvent):
        for row in model.history.all().values():
            assert not any(s.lower() in json.dumps(row, default=str).lower() for s in SECRETS), row


def test_erase_permissions(world, person) -> None:
    with pytest.raises(NotAllowed):
        person_erase(contact=person, actor=world.a1, reason="")  # the owner, but a rep
    with pytest.raises(NotFound):
        person_erase(contact=world.b1_shared, actor=world.ma, reason="")  # another team's contact
    assert Contact.objects.filter(pk=person.pk).exists() and not ErasureRecord.objects.exists()


def test_erase_page_requires_typing_the_name(world, person, client) -> None:
    client.force_login(world.ma)
    url = reverse("contacts:gdpr_erase", args=[person.pk])
    assert b"Type the person" in client.get(url).content
    response = client.post(url, {"confirm_name": "Zelda", "reason": ""})
    assert response.status_code == 400 and b"does not match" in response.content
    assert Contact.objects.filter(pk=person.pk).exists()
    response = client.post(url, {"confirm_name": " zelda  quixote ", "reason": "ticket 9"})
    assert response.status_code == 302 and not Contact.objects.filter(pk=person.pk).exists()
    assert ErasureRecord.objects.get().reason == "ticket 9"


def test_erase_page_for_a_rep_explains_and_hides_invisible(world, person, client) -> None:
    client.force_login(world.a1)
    response = client.get(reverse("contacts:gdpr_erase", args=[person.pk]), follow=True)
    assert b"Ask your manager" in response.content
    client.force_login(world.b1)
    assert client.post(reverse("contacts:gdpr_erase", args=[person.pk]), {"confirm_name": "x"}).status_code == 404
    assert Contact.objects.filter(pk=person.pk).exists()


def test_api_export_and_erase(world, person, api_client) -> None:
    api_client.force_authenticate(world.a2)
    assert api_client.get(f"/api/v1/person-data/{person.pk}/export/").status_code == 403
    api_client.force_authenticate(world.b1)
    assert api_client.get(f"/api/v1/person-data/{person.pk}/export/").status_code == 404
    api_client.force_authenticate(world.a1)
    response = api_client.get(f"/api/v1/person-data/{person.pk}/export/")
    assert response.status_code == 200 and response.json()["sources"]["contacts.contact"]["first_name"] == "Zelda"
    response = api_client.post(f"/api/v1/person-data/{person.pk}/erase/", {"confirm_name": "Zelda Quixote"})
    assert response.status_code == 403 and response.json()["error"]["code"] == "not_allowed"
    api_client.force_authenticate(world.admin)
    response = api_client.post(f"/api/v1/person-data/{person.pk}/erase/", {"confirm_name": "wrong"})
    assert response.status_code == 400
    response = api_client.post(f"/api/v1/person-data/{person.pk}/erase/", {"confirm_name": "Zelda Quixote"})
    assert response.status_code == 201 and response.json()["contact_id_was"] == person.pk
    assert not Contact.objects.filter(pk=person.pk).exists()


def test_erase_keeps_another_persons_import_row_that_only_contains_her_address(world, person) -> None:
    job = import_job_create(actor=world.a1, file_name="y.csv", data=b"Email,Phone\nxzelda.q@example.com,12\n")
    import_job_start(job=job, actor=world.a1, mapping=job.mapping, on_duplicate="skip")
    import_job_process(job_id=job.pk)
    quoted = person_export(contact=person, actor=world.a1)["sources"]["contacts.import_rows"]
    assert [e["raw"]["Email"] for e in quoted] == ["zelda.q@example.com"]
    person_erase(contact=person, actor=world.ma)
    assert list(ImportRowError.objects.values_list("raw__Email", flat=True)) == ["xzelda.q@example.com"]


def test_erase_sweeps_the_history_of_a_contact_merged_into_the_person(world, person) -> None:
    from contacts.services.merge import contact_merge

    twin = ContactFactory(first_name="Zelda", last_name="Quixote", notes="Zeldaq", owner=world.a1, team=world.team_a)
    identity_attach(contact=twin, actor=world.a1, kind="email", value="zelda.old@example.com")
    contact_update(contact=twin, actor=world.a1, city="Oldtown")
    twin_id = twin.pk
    contact_merge(primary=person, duplicate=twin, actor=world.ma)
    assert Contact.history.filter(id=twin_id).exists()
    person_erase(contact=person, actor=world.ma)
    assert not Contact.history.filter(id=twin_id).exists()
    assert not ContactIdentity.history.filter(contact_id=twin_id).exists()
    for model in (Contact, ContactIdentity):
        for row in model.history.all().values():
            assert "zelda" not in json.dumps(row, default=str).lower(), row


def test_erase_page_with_a_nul_in_the_reason_still_erases(world, person, client) -> None:
    client.force_login(world.ma)
    url = reverse("contacts:gdpr_erase", args=[person.pk])
    response = client.post(url, {"confirm_name": "Zelda Quixote", "reason": "ticket\x00 9"})
    assert response.status_code == 302 and not Contact.objects.filter(pk=person.pk).exists()
    assert ErasureRecord.objects.get().reason == "ticket 9"
