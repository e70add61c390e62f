"""Life events: CRUD, automatic job-change/move events, the timeline source, My day birthdays, merge and GDPR."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from contacts.models import LifeEvent
from contacts.profile_registrations import (
    _midnight,
    life_event_timeline,
    life_events_erase,
    life_events_export,
    life_events_move,
    life_events_restore,
)
from contacts.registry import TimelineQuery, merge_handlers, personal_data_sources, timeline_sources
from contacts.selectors.life_events import contact_life_events, upcoming_dates
from contacts.services import contact_update
from contacts.services.life_events import life_event_create, life_event_delete, life_event_update
from tests.contacts.factories import CompanyFactory, ContactFactory

pytestmark = pytest.mark.django_db
D = dt.date


def test_create_update_delete_and_newest_first(world) -> None:
    old = life_event_create(contact=world.a1_shared, actor=world.a1, kind="promotion", date=D(2020, 1, 5))
    new = life_event_create(
        contact=world.a1_shared, actor=world.a1, kind="accomplishment", date=D(2024, 3, 1), title="Ran a marathon"
    )
    assert contact_life_events(user=world.a1, contact=world.a1_shared) == [new, old]
    life_event_update(event=old, actor=world.a1, note="Head of sales")
    old.refresh_from_db()
    assert old.note == "Head of sales"
    life_event_delete(event=new, actor=world.a1)
    assert list(LifeEvent.objects.all()) == [old]


def test_custom_event_needs_a_title_and_nothing_is_saved(world) -> None:
    with pytest.raises(ValidationError) as exc:
        life_event_create(contact=world.a1_shared, actor=world.a1, kind="custom", date=D(2024, 1, 1), title="  ")
    assert "title" in exc.value.message_dict
    with pytest.raises(ValidationError):
        life_event_create(contact=world.a1_shared, actor=world.a1, kind="nonsense", date=D(2024, 1, 1))
    assert not LifeEvent.objects.exists()


def test_company_and_address_changes_record_automatic_events(world) -> None:
    acme, globex = CompanyFactory(name="Acme"), CompanyFactory(name="Globex")
    contact = ContactFactory(owner=world.a1, team=world.team_a, company=acme, city="Berlin", country="DE")
    contact_update(contact=contact, actor=world.a1, company=globex)
    contact_update(contact=contact, actor=world.a1, city="Paris", country="FR")
    events = contact_life_events(user=world.a1, contact=contact)
    assert {(e.kind, e.source, e.title) for e in events} == {
        ("job_change", "auto", "Moved to Globex"),
        ("move", "auto", "Moved to Paris, FR"),
    }


def test_contact_page_lists_events_and_adds_one_with_htmx(client, world) -> None:
    life_event_create(contact=world.a1_shared, actor=world.a1, kind="move", date=D(2023, 6, 1), source="auto")
    client.force_login(world.a1)
    url = reverse("contacts:life_event_add", args=[world.a1_shared.pk])
    response = client.post(
        url,
        {"event-kind": "promotion", "event-date": "2024-05-02", "event-title": "VP Sales", "event-note": ""},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert body.index("VP Sales") < body.index("Automatic")  # newest first, automatic ones shown too
    assert "added" in body  # the out-of-band flash message
    bad = client.post(
        url, {"event-kind": "custom", "event-date": "2024-05-02", "event-title": ""}, HTTP_HX_REQUEST="true"
    )
    assert "needs a title" in bad.content.decode()
    assert LifeEvent.objects.count() == 2


def test_rep_cannot_add_or_delete_events_of_an_invisible_contact(client, world) -> None:
    event = life_event_create(contact=world.b1_shared, actor=world.b1, kind="promotion", date=D(2024, 1, 1))
    client.force_login(world.a1)
    add = client.post(
        reverse("contacts:life_event_add", args=[world.b1_shared.pk]),
        {"event-kind": "move", "event-date": "2024-01-01"},
    )
    assert add.status_code == 404
    delete = client.post(reverse("contacts:life_event_delete", args=[world.b1_shared.pk, event.pk]))
    assert delete.status_code == 404
    assert LifeEvent.objects.count() == 1


def test_api_crud_visibility_and_custom_title(api_client, world, django_assert_max_num_queries) -> None:
    api_client.force_authenticate(world.a1)
    created = api_client.post(
        "/api/v1/life-events/", {"contact": world.a1_shared.pk, "kind": "birthday", "date": "1990-04-02"}, format="json"
    )
    assert created.status_code == 201, created.content
    bad = api_client.post(
        "/api/v1/life-events/", {"contact": world.a1_shared.pk, "kind": "custom", "date": "2024-01-01"}, format="json"
    )
    assert bad.status_code == 400 and "title" in bad.json()["error"]["fields"]
    hidden = api_client.post(
        "/api/v1/life-events/", {"contact": world.b1_shared.pk, "kind": "move", "date": "2024-01-01"}, format="json"
    )
    assert hidden.status_code == 400
    event_id = created.json()["id"]
    assert api_client.patch(f"/api/v1/life-events/{event_id}/", {"note": "x"}, format="json").json()["note"] == "x"
    life_event_create(contact=world.b1_shared, actor=world.b1, kind="move", date=D(2024, 1, 1))
    with django_assert_max_num_queries(6):
        listed = api_client.get("/api/v1/life-events/").json()["results"]
    assert [e["id"] for e in listed] == [event_id]
    api_client.force_authenticate(world.b1)
    assert api_client.delete(f"/api/v1/life-events/{event_id}/").status_code == 404
    api_client.force_authenticate(world.a1)
    assert api_client.delete(f"/api/v1/life-events/{event_id}/").status_code == 204


# --- Timeline -------------------------------------------------------------------------------------------------


def test_timeline_source_is_registered_and_pages_by_keyset(world) -> None:
    assert "life_event" in [s.key for s in timeline_sources()]
    events = [
        life_event_create(contact=world.a1_shared, actor=world.a1, kind="promotion", date=D(2024, 1, day))
        for day in (1, 2, 2, 3)
    ]
    query = TimelineQuery(user=world.a1, contact_ids=[world.a1_shared.pk], before=None, limit=2)
    first = life_event_timeline(query)
    assert [e.id for e in first] == [events[3].pk, events[2].pk]
    assert first[0].at == _midnight(D(2024, 1, 3))
    second = life_event_timeline(
        TimelineQuery(user=world.a1, contact_ids=[world.a1_shared.pk], before=first[-1].cursor, limit=2)
    )
    assert [e.id for e in second] == [events[1].pk, events[0].pk]
    # A cursor from another source at the same instant: "life_event" sorts before "message", so all of that day.
    other = (_midnight(D(2024, 1, 2)), "message", 1)
    assert [e.id for e in life_event_timeline(TimelineQuery(world.a1, [world.a1_shared.pk], other, 10))] == [
        events[2].pk,
        events[1].pk,
        events[0].pk,
    ]
    # A cursor inside a day includes that day's (midnight) events.
    noon = (_midnight(D(2024, 1, 2)) + dt.timedelta(hours=12), "activity", 1)
    assert len(life_event_timeline(TimelineQuery(world.a1, [world.a1_shared.pk], noon, 10))) == 3
    # A rep never gets events of a contact they cannot see, even if asked for its id.
    assert life_event_timeline(TimelineQuery(world.b1, [world.a1_shared.pk], None, 10)) == []


# --- My day ---------------------------------------------------------------------------------------------------


def test_upcoming_birthdays_wrap_the_year_and_respect_visibility(world, django_assert_max_num_queries) -> None:
    today = D(2025, 12, 25)
    world.a1_shared.birthday = D(1980, 1, 3)
    world.a1_shared.save()
    world.b1_shared.birthday = D(1980, 12, 26)  # invisible to a1
    world.b1_shared.save()
    life_event_create(
        contact=world.a2_shared, actor=world.a2, kind="anniversary", date=D(2015, 12, 31), title="Wedding"
    )
    life_event_create(contact=world.a2_shared, actor=world.a2, kind="birthday", date=D(1975, 2, 1))  # too far
    life_event_create(contact=world.a1_shared, actor=world.a1, kind="birthday", date=D(1980, 1, 3))  # same as field
    world.a1._team_ids_cache = None
    with django_assert_max_num_queries(3):
        items = upcoming_dates(user=world.a1, today=today)
    assert [(i.contact.pk, i.kind, i.on, i.years) for i in items] == [
        (world.a2_shared.pk, "anniversary", D(2025, 12, 31), 10),
        (world.a1_shared.pk, "birthday", D(2026, 1, 3), 46),
    ]


def test_feb_29_birthday_shows_on_feb_28_in_common_years(world) -> None:
    world.a1_shared.birthday = D(2000, 2, 29)
    world.a1_shared.save()
    items = upcoming_dates(user=world.a1, today=D(2025, 2, 20))
    assert [(i.on, i.years) for i in items] == [(D(2025, 2, 28), 25)]
    assert [i.on for i in upcoming_dates(user=world.a1, today=D(2028, 2, 20))] == [D(2028, 2, 29)]
    assert upcoming_dates(user=world.a1, today=D(2025, 3, 1)) == []


def test_my_day_shows_the_birthday_panel(client, world) -> None:
    world.a1_shared.birthday = timezone.localdate().replace(year=2000)  # a leap year: 29 February fits too
    world.a1_shared.save()
    client.force_login(world.a1)
    page = client.get(reverse("my_day")).content.decode()
    assert "Birthdays and anniversaries" in page
    assert "Ann Shared" in page
    assert "Today" in page


# --- Merge and personal data -------------------------------------------------------------------------------


def test_merge_handler_moves_and_restores_life_events(world) -> None:
    assert "life_events" in [h.key for h in merge_handlers()]
    mine = life_event_create(contact=world.a1_shared, actor=world.a1, kind="promotion", date=D(2024, 1, 1))
    theirs = life_event_create(contact=world.a2_shared, actor=world.a1, kind="move", date=D(2024, 2, 1))
    gone = life_event_create(contact=world.a2_shared, actor=world.a1, kind="move", date=D(2024, 3, 1))
    record, conflicts = life_events_move(world.a1_shared, world.a2_shared)
    assert conflicts == []
    assert set(LifeEvent.objects.filter(contact=world.a1_shared).values_list("id", flat=True)) == {
        mine.pk,
        theirs.pk,
        gone.pk,
    }
    gone_id = gone.pk
    gone.delete()
    problems = life_events_restore(world.a1_shared, world.a2_shared, record)
    assert problems == [f"Life event #{gone_id} was deleted or moved after the merge and was not restored."]
    assert list(LifeEvent.objects.filter(contact=world.a2_shared).values_list("id", flat=True)) == [theirs.pk]
    assert list(LifeEvent.objects.filter(contact=world.a1_shared).values_list("id", flat=True)) == [mine.pk]


def test_personal_data_export_and_erase(world) -> None:
    assert "life_events" in [s.key for s in personal_data_sources()]
    life_event_create(contact=world.a1_shared, actor=world.a1, kind="custom", date=D(2024, 1, 1), title="Secret")
    life_event_create(contact=world.a2_shared, actor=world.a1, kind="move", date=D(2024, 1, 1))
    exported = life_events_export(world.a1_shared)
    assert [e["title"] for e in exported] == ["Secret"]
    assert life_events_erase(world.a1_shared) == 1
    assert not LifeEvent.objects.filter(contact=world.a1_shared).exists()
    assert not LifeEvent.history.filter(contact_id=world.a1_shared.pk).exists()
    assert LifeEvent.objects.filter(contact=world.a2_shared).count() == 1
