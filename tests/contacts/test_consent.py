"""Consent per channel, do-not-contact, and the contact_can_be_contacted rule later issues rely on."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from contacts.models import Consent
from contacts.profile_registrations import consents_erase, consents_export, consents_move, consents_restore
from contacts.selectors.consent import contact_can_be_contacted
from contacts.services.consent import consent_set

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("status", "basis", "expected"),
    [
        ("opted_in", "", True),
        ("opted_in", "consent", True),
        ("opted_out", "contract", False),
        ("opted_out", "", False),
        ("unknown", "", False),
        ("unknown", "consent", False),
        ("unknown", "contract", True),
        ("unknown", "legitimate_interest", True),
        ("unknown", "legal_obligation", False),
    ],
)
def test_channel_rule(world, status: str, basis: str, expected: bool, django_assert_num_queries) -> None:
    consent_set(contact=world.a1_shared, channel="email", status=status, legal_basis=basis, source="t", actor=world.a1)
    with django_assert_num_queries(1):
        assert contact_can_be_contacted(world.a1_shared, "email") is expected


def test_no_row_means_unknown_and_is_not_consent(world) -> None:
    assert contact_can_be_contacted(world.a1_shared, "sms") is False


def test_do_not_contact_overrides_an_opt_in(world) -> None:
    consent_set(contact=world.a1_shared, channel="email", status="opted_in", actor=world.a1)
    world.a1_shared.do_not_contact = True
    world.a1_shared.save()
    assert contact_can_be_contacted(world.a1_shared, "email") is False
    # The selector reads the database, not a stale object someone passes in.
    stale = type(world.a1_shared).objects.get(pk=world.a1_shared.pk)
    stale.do_not_contact = False
    assert contact_can_be_contacted(stale, "email") is False


def test_consent_set_upserts_and_keeps_history(world) -> None:
    first = consent_set(contact=world.a1_shared, channel="email", status="opted_in", source="web form", actor=world.a1)
    second = consent_set(contact=world.a1_shared, channel="email", status="opted_out", source="unsubscribe", actor=None)
    assert first.pk == second.pk
    assert Consent.objects.count() == 1
    assert second.recorded_by is None and second.source == "unsubscribe"
    assert list(second.history.order_by("history_id").values_list("status", flat=True)) == ["opted_in", "opted_out"]
    assert contact_can_be_contacted(world.a1_shared, "email") is False


def test_bad_values_are_clear_errors_and_save_nothing(world) -> None:
    with pytest.raises(ValidationError) as exc:
        consent_set(contact=world.a1_shared, channel="pigeon", status="maybe", legal_basis="whim", actor=world.a1)
    assert set(exc.value.message_dict) == {"channel", "status", "legal_basis"}
    assert not Consent.objects.exists()


def test_contact_page_records_consent_and_toggles_do_not_contact(client, world) -> None:
    client.force_login(world.a1)
    response = client.post(
        reverse("contacts:consent_update", args=[world.a1_shared.pk]),
        {
            "consent-channel": "sms",
            "consent-status": "opted_in",
            "consent-legal_basis": "consent",
            "consent-source": "call",
        },
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert "SMS consent set to opted in." in response.content.decode()
    assert Consent.objects.get().status == "opted_in"
    response = client.post(reverse("contacts:do_not_contact", args=[world.a1_shared.pk]), {"do_not_contact": "on"})
    assert response.status_code == 302
    world.a1_shared.refresh_from_db()
    assert world.a1_shared.do_not_contact is True
    client.post(reverse("contacts:do_not_contact", args=[world.a1_shared.pk]), {"do_not_contact": "off"})
    world.a1_shared.refresh_from_db()
    assert world.a1_shared.do_not_contact is False
    assert (
        client.post(reverse("contacts:do_not_contact", args=[world.b1_shared.pk]), {"do_not_contact": "on"}).status_code
        == 404
    )


def test_api_lists_visible_and_upserts(api_client, world, django_assert_max_num_queries) -> None:
    api_client.force_authenticate(world.a1)
    url = "/api/v1/consents/"
    body = {"contact": world.a1_shared.pk, "channel": "email", "status": "opted_in", "legal_basis": "consent"}
    assert api_client.post(url, body, format="json").status_code == 201
    again = api_client.post(url, {**body, "status": "opted_out"}, format="json")
    assert again.status_code == 201 and again.json()["status"] == "opted_out"
    assert Consent.objects.count() == 1
    bad = api_client.post(url, {**body, "status": "perhaps"}, format="json")
    assert bad.status_code == 400 and "status" in bad.json()["error"]["fields"]
    hidden = api_client.post(url, {**body, "contact": world.b1_shared.pk}, format="json")
    assert hidden.status_code == 400
    consent_set(contact=world.b1_shared, channel="email", status="opted_in", actor=world.b1)
    with django_assert_max_num_queries(6):
        rows = api_client.get(url).json()["results"]
    assert [r["contact"] for r in rows] == [world.a1_shared.pk]


def test_merge_keeps_the_newest_consent_on_the_primary_and_restores(world) -> None:
    primary, duplicate = world.a1_shared, world.a2_shared
    now = timezone.now()
    old_primary = consent_set(contact=primary, channel="email", status="opted_in", actor=world.a1)
    Consent.objects.filter(pk=old_primary.pk).update(recorded_at=now - dt.timedelta(days=5))
    newer_dup = consent_set(contact=duplicate, channel="email", status="opted_out", actor=world.a1)
    sms_primary = consent_set(contact=primary, channel="sms", status="opted_in", actor=world.a1)
    older_dup_sms = consent_set(contact=duplicate, channel="sms", status="opted_out", actor=world.a1)
    Consent.objects.filter(pk=older_dup_sms.pk).update(recorded_at=now - dt.timedelta(days=9))
    post = consent_set(contact=duplicate, channel="post", status="opted_in", actor=world.a1)

    record, conflicts = consents_move(primary, duplicate)
    assert conflicts == []
    on_primary = {c.channel: (c.pk, c.status) for c in Consent.objects.filter(contact=primary)}
    assert on_primary == {
        "email": (newer_dup.pk, "opted_out"),
        "sms": (sms_primary.pk, "opted_in"),
        "post": (post.pk, "opted_in"),
    }
    assert not Consent.objects.filter(contact=duplicate).exists()

    assert consents_restore(primary, duplicate, record) == []
    assert {c.channel: (c.pk, c.status) for c in Consent.objects.filter(contact=primary)} == {
        "email": (old_primary.pk, "opted_in"),
        "sms": (sms_primary.pk, "opted_in"),
    }
    assert {c.channel: (c.pk, c.status) for c in Consent.objects.filter(contact=duplicate)} == {
        "email": (newer_dup.pk, "opted_out"),
        "sms": (older_dup_sms.pk, "opted_out"),
        "post": (post.pk, "opted_in"),
    }


def test_personal_data_export_and_erase(world) -> None:
    consent_set(contact=world.a1_shared, channel="email", status="opted_in", source="form", actor=world.a1)
    consent_set(contact=world.a2_shared, channel="email", status="opted_in", actor=world.a1)
    assert [(c["channel"], c["status"], c["source"]) for c in consents_export(world.a1_shared)] == [
        ("email", "opted_in", "form")
    ]
    assert consents_erase(world.a1_shared) == 1
    assert not Consent.objects.filter(contact=world.a1_shared).exists()
    assert not Consent.history.filter(contact_id=world.a1_shared.pk).exists()
    assert Consent.objects.filter(contact=world.a2_shared).count() == 1


def test_unmerge_refuses_to_move_away_an_opt_out_recorded_on_the_survivor_after_the_merge(world) -> None:
    from contacts.services.merge import contact_merge, contact_unmerge
    from crm.errors import Conflict

    primary, duplicate = world.a1_shared, world.a2_shared
    old = consent_set(contact=primary, channel="email", status="opted_in", actor=world.a1)
    Consent.objects.filter(pk=old.pk).update(recorded_at=timezone.now() - dt.timedelta(days=5))
    consent_set(contact=duplicate, channel="email", status="opted_in", actor=world.a1)
    record = contact_merge(primary=primary, duplicate=duplicate, actor=world.a1)
    consent_set(contact=primary, channel="email", status="opted_out", actor=world.a1)  # the person opts out
    with pytest.raises(Conflict) as exc:
        contact_unmerge(record=record, actor=world.a1)
    assert any("recorded again after the merge" in c for c in exc.value.fields["conflicts"])
    assert not contact_can_be_contacted(primary, "email")
    assert Consent.objects.get(contact=primary, channel="email").status == "opted_out"
