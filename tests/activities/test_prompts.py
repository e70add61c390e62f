"""Touch prompts: the set-based scan, its cadence precedence, snooze, dismiss and one-click calls."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from activities.models import Activity, ContactCadence, TierCadence, TouchPrompt
from activities.services.calendar import (
    touch_prompt_dismiss,
    touch_prompt_snooze,
    touch_prompt_to_activity,
    touch_prompts_scan,
)
from crm.errors import DomainError
from tests.contacts.factories import ContactFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def _touched(world, days_ago: int, **kwargs):
    kwargs.setdefault("owner", world.a1)
    kwargs.setdefault("team", world.team_a)
    return ContactFactory(last_touch_at=NOW - dt.timedelta(days=days_ago), **kwargs)


def test_scan_prompts_only_contacts_past_their_tier_cadence(world) -> None:
    TierCadence.objects.create(tier="A", days=14)
    late = _touched(world, 31, tier="A")
    recent = _touched(world, 5, tier="A")
    no_cadence = _touched(world, 400, tier="C")

    assert touch_prompts_scan(now=NOW) >= 1

    prompted = set(TouchPrompt.objects.values_list("contact_id", flat=True))
    assert late.pk in prompted
    assert recent.pk not in prompted and no_cadence.pk not in prompted
    prompt = TouchPrompt.objects.get(contact=late)
    assert prompt.owner == world.a1 and prompt.cadence_days == 14 and prompt.cadence_source == "tier"
    assert prompt.reason == "usually every 14 days, last touch 31 days ago"


def test_blank_tier_has_its_own_cadence(world) -> None:
    TierCadence.objects.create(tier="", days=60)
    blank = _touched(world, 61, tier="")
    touch_prompts_scan(now=NOW)
    assert TouchPrompt.objects.filter(contact=blank).exists()


def test_explicit_beats_learned_beats_tier(world) -> None:
    TierCadence.objects.create(tier="B", days=100)
    explicit = _touched(world, 20, tier="B")
    learned = _touched(world, 20, tier="B")
    tier_only = _touched(world, 20, tier="B")
    ContactCadence.objects.create(contact=explicit, days=10, source="explicit")
    ContactCadence.objects.create(contact=learned, days=15, source="learned")

    touch_prompts_scan(now=NOW)

    rows = {p.contact_id: p for p in TouchPrompt.objects.all()}
    assert rows[explicit.pk].cadence_days == 10 and rows[explicit.pk].cadence_source == "explicit"
    assert rows[learned.pk].cadence_days == 15 and rows[learned.pk].cadence_source == "learned"
    assert tier_only.pk not in rows


def test_scan_skips_do_not_contact_ownerless_and_contacts_with_open_activity(world) -> None:
    TierCadence.objects.create(tier="A", days=7)
    dnc = _touched(world, 30, tier="A", do_not_contact=True)
    ownerless = _touched(world, 30, tier="A", owner=None)
    busy = _touched(world, 30, tier="A")
    Activity.objects.create(subject="Call", owner=world.a1, contact=busy, due_at=NOW)

    touch_prompts_scan(now=NOW)

    prompted = set(TouchPrompt.objects.values_list("contact_id", flat=True))
    assert not prompted & {dnc.pk, ownerless.pk, busy.pk}


def test_scan_is_one_insert_statement_and_idempotent(world) -> None:
    TierCadence.objects.create(tier="A", days=7)
    for _ in range(5):
        _touched(world, 30, tier="A")
    with CaptureQueriesContext(connection) as ctx:
        first = touch_prompts_scan(now=NOW)
    inserts = [q for q in ctx.captured_queries if q["sql"].lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 1
    assert first == 5
    before = sorted(TouchPrompt.objects.values_list("id", "contact_id", "status"))

    assert touch_prompts_scan(now=NOW) == 0
    assert sorted(TouchPrompt.objects.values_list("id", "contact_id", "status")) == before


def test_snoozed_prompt_stays_hidden_until_its_date_then_reopens(world) -> None:
    TierCadence.objects.create(tier="A", days=7)
    contact = _touched(world, 30, tier="A")
    touch_prompts_scan(now=NOW)
    prompt = TouchPrompt.objects.get(contact=contact)

    touch_prompt_snooze(prompt=prompt, actor=world.a1, days=3)
    touch_prompts_scan(now=NOW + dt.timedelta(days=1))
    assert list(TouchPrompt.objects.values_list("status", flat=True)) == ["snoozed"]

    touch_prompts_scan(now=NOW + dt.timedelta(days=3, hours=1))
    prompt.refresh_from_db()
    assert prompt.status == "open" and prompt.snoozed_until is None
    assert TouchPrompt.objects.count() == 1


def test_dismissed_prompt_returns_only_after_a_new_touch(world) -> None:
    TierCadence.objects.create(tier="A", days=7)
    contact = _touched(world, 30, tier="A")
    touch_prompts_scan(now=NOW)
    touch_prompt_dismiss(prompt=TouchPrompt.objects.get(contact=contact), actor=world.a1)
    assert touch_prompts_scan(now=NOW) == 0

    contact.last_touch_at = NOW - dt.timedelta(days=10)
    contact.save(update_fields=["last_touch_at"])
    assert touch_prompts_scan(now=NOW) == 1


@pytest.mark.parametrize("days", [0, -1, 366])
def test_snooze_rejects_out_of_range_days(world, days: int) -> None:
    prompt = TouchPrompt.objects.create(contact=world.a1_shared, owner=world.a1, cadence_days=7)
    with pytest.raises(DomainError):
        touch_prompt_snooze(prompt=prompt, actor=world.a1, days=days)


def test_prompt_becomes_a_call_due_today(world) -> None:
    prompt = TouchPrompt.objects.create(
        contact=world.a1_shared, owner=world.a1, cadence_days=14, last_touch_at=NOW - dt.timedelta(days=31)
    )
    activity = touch_prompt_to_activity(prompt=prompt, actor=world.a1)

    prompt.refresh_from_db()
    assert prompt.status == "done" and prompt.activity == activity
    assert activity.kind == "call" and activity.owner == world.a1 and activity.contact == world.a1_shared
    assert activity.status == "open"
    assert timezone.localtime(activity.due_at).date() == timezone.localdate()
    with pytest.raises(DomainError):
        touch_prompt_to_activity(prompt=prompt, actor=world.a1)


def test_my_day_shows_prompt_with_reason_and_create_call_works(client, world, django_assert_max_num_queries) -> None:
    for n in range(5):
        TouchPrompt.objects.create(
            contact=ContactFactory(owner=world.a1, team=world.team_a, first_name=f"P{n}"),
            owner=world.a1,
            cadence_days=14,
            last_touch_at=NOW - dt.timedelta(days=31),
        )
    client.force_login(world.a1)
    with django_assert_max_num_queries(30):
        response = client.get("/")
    body = response.content.decode()
    assert "Time to get in touch" in body
    assert "usually every 14 days, last touch 31 days ago" in body
    prompt = TouchPrompt.objects.first()
    response = client.post(reverse("activities:prompt_to_activity", args=[prompt.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 204 and response["HX-Refresh"] == "true"
    assert "added to today" in client.get("/").content.decode()
    prompt.refresh_from_db()
    assert prompt.status == "done" and prompt.activity is not None


def test_htmx_snooze_with_bad_days_shows_error_not_500(client, world) -> None:
    prompt = TouchPrompt.objects.create(contact=world.a1_shared, owner=world.a1, cadence_days=7)
    client.force_login(world.a1)
    for days in ("abc", "0"):
        response = client.post(
            reverse("activities:prompt_snooze", args=[prompt.pk]), {"days": days}, HTTP_HX_REQUEST="true"
        )
        assert response.status_code == 200
        assert "days" in response.content.decode()
    prompt.refresh_from_db()
    assert prompt.status == "open"


def test_only_owner_or_their_manager_acts_on_a_prompt(client, world) -> None:
    prompt = TouchPrompt.objects.create(contact=world.a1_shared, owner=world.a1, cadence_days=7)
    url = reverse("activities:prompt_dismiss", args=[prompt.pk])
    for outsider in (world.a2, world.b1):  # a teammate who can see the shared contact, and another team
        client.force_login(outsider)
        assert client.post(url).status_code == 404
    prompt.refresh_from_db()
    assert prompt.status == "open"
    client.force_login(world.ma)
    assert client.post(url).status_code == 302
    prompt.refresh_from_db()
    assert prompt.status == "dismissed"


def test_htmx_dismiss_swaps_the_panel(client, world) -> None:
    prompt = TouchPrompt.objects.create(contact=world.a1_shared, owner=world.a1, cadence_days=7)
    other = TouchPrompt.objects.create(contact=world.a1_private, owner=world.a1, cadence_days=7)
    client.force_login(world.a1)
    response = client.post(reverse("activities:prompt_dismiss", args=[prompt.pk]), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and 'id="touch-prompts"' in body
    assert f'id="prompt-{other.pk}"' in body and f'id="prompt-{prompt.pk}"' not in body


def test_prompt_actions_require_post(client, world) -> None:
    prompt = TouchPrompt.objects.create(contact=world.a1_shared, owner=world.a1, cadence_days=7)
    client.force_login(world.a1)
    assert client.get(reverse("activities:prompt_to_activity", args=[prompt.pk])).status_code == 405


def test_api_lists_own_prompts_and_acts_on_them(api_client, world, django_assert_max_num_queries) -> None:
    for n in range(4):
        TouchPrompt.objects.create(
            contact=ContactFactory(owner=world.a1, team=world.team_a), owner=world.a1, cadence_days=7 + n
        )
    TouchPrompt.objects.create(contact=world.a2_shared, owner=world.a2, cadence_days=7)
    api_client.force_authenticate(world.a1)
    with django_assert_max_num_queries(6):
        response = api_client.get("/api/v1/touch-prompts/")
    assert response.status_code == 200
    rows = response.json()["results"]
    assert len(rows) == 4 and all(r["owner"] == world.a1.pk for r in rows)
    assert rows[0]["reason"].startswith("usually every")

    first, second, third = (r["id"] for r in rows[:3])
    response = api_client.post(f"/api/v1/touch-prompts/{first}/to-activity/")
    assert response.status_code == 201
    assert Activity.objects.get(pk=response.json()["activity"]).kind == "call"
    assert api_client.post(f"/api/v1/touch-prompts/{first}/to-activity/").status_code == 400  # already handled
    response = api_client.post(f"/api/v1/touch-prompts/{second}/snooze/", {"days": 5}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "snoozed"
    response = api_client.post(f"/api/v1/touch-prompts/{third}/dismiss/")
    assert response.status_code == 200 and response.json()["status"] == "dismissed"
    assert len(api_client.get("/api/v1/touch-prompts/?status=snoozed").json()["results"]) == 1


def test_api_prompt_bad_input_and_outsiders(api_client, world) -> None:
    prompt = TouchPrompt.objects.create(contact=world.a1_shared, owner=world.a1, cadence_days=7)
    api_client.force_authenticate(world.a1)
    for payload in ({}, {"days": 0}, {"days": "soon"}, {"days": 999}):
        response = api_client.post(f"/api/v1/touch-prompts/{prompt.pk}/snooze/", payload, format="json")
        assert response.status_code == 400 and response.json()["error"]["fields"]["days"]
    assert api_client.get("/api/v1/touch-prompts/?status=bogus").status_code == 400
    api_client.force_authenticate(world.a2)
    assert api_client.post(f"/api/v1/touch-prompts/{prompt.pk}/dismiss/").status_code == 404
    api_client.force_authenticate(None)
    assert api_client.get("/api/v1/touch-prompts/").status_code in (401, 403)
