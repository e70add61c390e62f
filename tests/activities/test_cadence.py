"""Cadence learning: the median gap between done activities, never overriding an explicit cadence."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from activities.models import Activity, ContactCadence
from activities.services.calendar import cadence_learn, contact_cadence_set
from crm.errors import DomainError

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def _done(contact, owner, days_ago: float) -> None:
    Activity.objects.create(
        subject="Touch", owner=owner, contact=contact, status="done", done_at=NOW - dt.timedelta(days=days_ago)
    )


def test_learned_cadence_is_the_median_gap(world) -> None:
    # Gaps: 10, 20, 60 days -> median 20.
    for days_ago in (100, 90, 70, 10):
        _done(world.a1_shared, world.a1, days_ago)
    assert cadence_learn() == 1
    cadence = ContactCadence.objects.get(contact=world.a1_shared)
    assert cadence.days == 20 and cadence.source == "learned"


def test_fewer_than_three_touches_learn_nothing(world) -> None:
    _done(world.a1_shared, world.a1, 30)
    _done(world.a1_shared, world.a1, 10)
    Activity.objects.create(subject="Open", owner=world.a1, contact=world.a1_shared, due_at=NOW)
    assert cadence_learn() == 0
    assert not ContactCadence.objects.exists()


def test_learning_never_overwrites_an_explicit_cadence_but_updates_a_learned_one(world) -> None:
    contact_cadence_set(contact=world.a1_shared, days=7, actor=world.a1)
    ContactCadence.objects.create(contact=world.a2_shared, days=99, source="learned")
    for contact in (world.a1_shared, world.a2_shared):
        for days_ago in (40, 30, 20):
            _done(contact, world.a1, days_ago)

    cadence_learn()
    cadence_learn()  # a rerun changes nothing more

    assert ContactCadence.objects.get(contact=world.a1_shared).days == 7
    learned = ContactCadence.objects.get(contact=world.a2_shared)
    assert learned.days == 10 and learned.source == "learned"


def test_learning_can_be_limited_to_some_contacts(world) -> None:
    for contact in (world.a1_shared, world.a2_shared):
        for days_ago in (40, 30, 20):
            _done(contact, world.a1, days_ago)
    cadence_learn(contact_ids=[world.a2_shared.pk])
    assert list(ContactCadence.objects.values_list("contact_id", flat=True)) == [world.a2_shared.pk]


@pytest.mark.parametrize("days", [0, 4000])
def test_explicit_cadence_out_of_range_is_rejected(world, days: int) -> None:
    with pytest.raises(DomainError):
        contact_cadence_set(contact=world.a1_shared, days=days, actor=world.a1)


def test_api_sets_explicit_cadence_for_visible_contact_only(api_client, world, django_assert_max_num_queries) -> None:
    api_client.force_authenticate(world.a1)
    response = api_client.post("/api/v1/cadences/", {"contact": world.a1_shared.pk, "days": 21}, format="json")
    assert response.status_code == 201 and response.json()["source"] == "explicit"
    assert ContactCadence.objects.get(contact=world.a1_shared).days == 21
    assert api_client.post("/api/v1/cadences/", {"contact": world.b1_shared.pk, "days": 21}).status_code == 404
    assert api_client.post("/api/v1/cadences/", {"contact": world.a1_shared.pk, "days": 0}).status_code == 400
    assert api_client.post("/api/v1/cadences/", {"days": 5}).status_code == 400
    ContactCadence.objects.create(contact=world.b1_shared, days=3, source="learned")
    with django_assert_max_num_queries(5):
        rows = api_client.get("/api/v1/cadences/").json()["results"]
    assert [r["contact"] for r in rows] == [world.a1_shared.pk]
    assert api_client.delete(f"/api/v1/cadences/{rows[0]['id']}/").status_code == 204
    assert not ContactCadence.objects.filter(contact=world.a1_shared).exists()


def test_api_tier_cadences_are_admin_writable_only(api_client, world) -> None:
    api_client.force_authenticate(world.a1)
    assert api_client.post("/api/v1/tier-cadences/", {"tier": "A", "days": 14}).status_code == 403
    api_client.force_authenticate(world.admin)
    response = api_client.post("/api/v1/tier-cadences/", {"tier": "A", "days": 14}, format="json")
    assert response.status_code == 201
    assert api_client.post("/api/v1/tier-cadences/", {"tier": "", "days": 60}, format="json").status_code == 201
    assert api_client.post("/api/v1/tier-cadences/", {"tier": "Z", "days": 5}, format="json").status_code == 400
    assert api_client.post("/api/v1/tier-cadences/", {"tier": "B", "days": 0}, format="json").status_code == 400
    pk = response.json()["id"]
    assert api_client.put(f"/api/v1/tier-cadences/{pk}/", {"tier": "A", "days": 10}, format="json").status_code == 200
    api_client.force_authenticate(world.a1)
    rows = api_client.get("/api/v1/tier-cadences/").json()
    assert {(r["tier"], r["days"]) for r in rows} == {("", 60), ("A", 10)}
    assert api_client.delete(f"/api/v1/tier-cadences/{pk}/").status_code == 403
