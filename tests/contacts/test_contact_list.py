"""The contact list: ContactFilter filters on the page and the API, keyset pages, constant query count."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from contacts.models import Contact
from tests.contacts.factories import CompanyFactory, ContactFactory

pytestmark = pytest.mark.django_db


def _names(response) -> set[str]:  # type: ignore[no-untyped-def]
    body = response.content.decode()
    return {c.display_name for c in Contact.objects.all() if f">{c.display_name}</a>" in body}


@pytest.fixture
def varied(world):  # type: ignore[no-untyped-def]
    acme = CompanyFactory(name="Acme", owner=world.a1, team=world.team_a)
    now = timezone.now()
    return {
        "cust": ContactFactory(first_name="Cus", last_name="Tomer", owner=world.a1, team=world.team_a,
                               lifecycle_stage="customer", tier="A", tags=["vip"], company=acme, country="DE",
                               last_touch_at=now - dt.timedelta(days=2)),
        "dnc": ContactFactory(first_name="Dee", last_name="Nocall", owner=world.a2, team=world.team_a,
                              do_not_contact=True, last_touch_at=now - dt.timedelta(days=90)),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"lifecycle_stage": "customer"}, {"Cus Tomer"}),
        ({"tier": "A"}, {"Cus Tomer"}),
        ({"tag": "vip"}, {"Cus Tomer"}),
        ({"country": "de"}, {"Cus Tomer"}),
        ({"do_not_contact": "true"}, {"Dee Nocall"}),
        ({"last_touch_after": (timezone.now() - dt.timedelta(days=10)).date().isoformat()}, {"Cus Tomer"}),
        ({"last_touch_before": (timezone.now() - dt.timedelta(days=10)).date().isoformat()}, {"Dee Nocall"}),
        ({"q": "nocall"}, {"Dee Nocall"}),
    ],
)
def test_filters_narrow_the_list(client, world, varied, params, expected) -> None:  # type: ignore[no-untyped-def]
    client.force_login(world.a1)
    response = client.get(reverse("contacts:list"), params)
    assert response.status_code == 200
    assert _names(response) == expected


def test_owner_team_and_company_filters(client, world, varied) -> None:  # type: ignore[no-untyped-def]
    client.force_login(world.a1)
    assert _names(client.get(reverse("contacts:list"), {"owner": world.a2.pk})) == {"Amy Teamwide", "Dee Nocall"}
    assert "Bea Other" not in _names(client.get(reverse("contacts:list"), {"team": world.team_a.pk}))
    company = varied["cust"].company_id
    assert _names(client.get(reverse("contacts:list"), {"company": company})) == {"Cus Tomer"}


def test_filters_never_reveal_invisible_contacts(client, world, varied) -> None:  # type: ignore[no-untyped-def]
    client.force_login(world.b1)
    assert _names(client.get(reverse("contacts:list"), {"lifecycle_stage": "customer"})) == set()
    assert _names(client.get(reverse("contacts:list"))) == {"Bea Other"}


def test_invalid_filter_value_shows_an_error(client, world, varied) -> None:  # type: ignore[no-untyped-def]
    client.force_login(world.a1)
    response = client.get(reverse("contacts:list"), {"lifecycle_stage": "zombie", "last_touch_after": "soon"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "Select a valid choice" in body and "Enter a valid date" in body


def test_keyset_pages_without_offset_or_count(client, world, django_assert_max_num_queries) -> None:  # type: ignore[no-untyped-def]
    for n in range(120):
        ContactFactory(first_name="Bulk", last_name=f"N{n:03d}", owner=world.a1, team=world.team_a)
    client.force_login(world.a1)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    seen: list[str] = []
    url, params = reverse("contacts:list"), {"q": "bulk"}
    while True:
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(url, params)
        sql = " ".join(q["sql"].upper() for q in ctx.captured_queries if '"contacts_contact"' in q["sql"])
        assert "OFFSET" not in sql and "COUNT(" not in sql
        names = sorted(_names(response))
        seen += names
        after = response.context["next_after"]
        if not after:
            break
        params = {"q": "bulk", "after": after}
    assert len(seen) == len(set(seen)) == 120


@pytest.mark.parametrize("rows", [3, 60])
def test_list_page_query_count_is_constant(client, world, rows, django_assert_max_num_queries) -> None:  # type: ignore[no-untyped-def]
    acme = CompanyFactory(name="Acme", owner=world.a1, team=world.team_a)
    for n in range(rows):
        ContactFactory(first_name="Row", last_name=str(n), owner=world.a1, team=world.team_a, company=acme)
    client.force_login(world.a1)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("contacts:list"), {"lifecycle_stage": "lead", "owner": world.a1.pk})
    assert response.status_code == 200


def test_api_uses_the_same_filters(api_client, world, varied) -> None:  # type: ignore[no-untyped-def]
    api_client.force_authenticate(world.a1)
    data = api_client.get("/api/v1/contacts/", {"tag": "vip", "country": "DE"}).json()
    assert [c["display_name"] for c in data["results"]] == ["Cus Tomer"]
    data = api_client.get("/api/v1/contacts/", {"do_not_contact": "true"}).json()
    assert [c["display_name"] for c in data["results"]] == ["Dee Nocall"]


def test_non_ascii_digits_in_after_are_ignored_not_a_500(client, world) -> None:  # type: ignore[no-untyped-def]
    # "²".isdigit() is True but int("²") raises: the page cursor must be checked with isdecimal().
    client.force_login(world.a1)
    assert client.get(reverse("contacts:list"), {"after": "²"}).status_code == 200
    assert client.get(reverse("contacts:company_list"), {"after": "²"}).status_code == 200
