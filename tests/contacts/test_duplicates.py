"""The duplicate finder, the review queue and its API: strong and weak matches, idempotent rescans, visibility."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import Visibility
from contacts.identities import normalize_identity
from contacts.models import Contact, ContactIdentity, DuplicateCandidate
from contacts.services.duplicates import duplicates_find
from contacts.tasks.duplicates import duplicates_find_task
from tests.contacts.factories import CompanyFactory, ContactFactory

pytestmark = pytest.mark.django_db


def identity(contact: Contact, kind: str, value: str) -> ContactIdentity:
    normalized, handle = normalize_identity(kind, value)
    return ContactIdentity.objects.create(contact=contact, kind=kind, value=value, normalized=normalized, handle=handle)


def pair(x: Contact, y: Contact) -> DuplicateCandidate | None:
    a, b = sorted([x.pk, y.pk])
    return DuplicateCandidate.objects.filter(contact_a_id=a, contact_b_id=b).first()


def two(**kwargs: object) -> tuple[Contact, Contact]:
    return ContactFactory(**kwargs), ContactFactory(**kwargs)


# --- Strong matches -------------------------------------------------------------------------------------------


def test_gmail_dots_plus_tag_and_googlemail_are_one_address() -> None:
    x = ContactFactory(first_name="Jane", last_name="Doe")
    y = ContactFactory(first_name="J", last_name="Roe")
    identity(x, "email", "Jane.Doe@gmail.com")
    identity(y, "email", "janedoe+newsletter@googlemail.com")
    assert duplicates_find() == 1
    candidate = pair(x, y)
    assert candidate is not None
    assert candidate.strength == "strong" and candidate.score == 1.0
    assert "janedoe@gmail.com" in candidate.reason
    assert candidate.contact_a_id < candidate.contact_b_id


def test_plus_tag_is_ignored_but_dots_matter_outside_gmail() -> None:
    x, y, z = ContactFactory(), ContactFactory(), ContactFactory()
    identity(x, "email", "jane.doe@acme.com")
    identity(y, "email", "jane.doe+crm@acme.com")
    identity(z, "email", "janedoe@acme.com")
    duplicates_find()
    assert pair(x, y) is not None
    assert pair(x, z) is None and pair(y, z) is None


def test_email_typed_as_other_matches_email() -> None:
    x, y = two()
    identity(x, "email", "pat@acme.com")
    identity(y, "other", "Pat@Acme.com")
    duplicates_find()
    assert pair(x, y).strength == "strong"


def test_phone_in_different_formats_matches_by_national_number() -> None:
    x, y, z = ContactFactory(), ContactFactory(), ContactFactory()
    ContactIdentity.objects.create(contact=x, kind="phone", value="+49 30 12345678", normalized="+493012345678")
    # The same number saved with the wrong default region: a different E.164 value, the same national number.
    ContactIdentity.objects.create(contact=y, kind="phone", value="030 12345678", normalized="+13012345678")
    identity(z, "other", "+49 (30) 1234-5678")
    duplicates_find()
    assert pair(x, y).strength == "strong"
    assert pair(x, z).strength == "strong"
    assert "Same phone number" in pair(x, y).reason


def test_same_handle_under_other_and_twitter_matches() -> None:
    x, y = two()
    identity(x, "twitter", "@JaneDoe")
    identity(y, "other", "https://twitter.com/janedoe")
    duplicates_find()
    assert pair(x, y).strength == "strong"


def test_same_handle_on_two_different_networks_is_not_evidence() -> None:
    x, y = two()
    identity(x, "twitter", "@janedoe")
    identity(y, "facebook", "janedoe")
    assert duplicates_find() == 0


# --- Weak matches ---------------------------------------------------------------------------------------------


def test_similar_name_at_same_company_is_weak() -> None:
    acme = CompanyFactory(name="Acme")
    x = ContactFactory(first_name="Bob", last_name="Smith", company=acme)
    y = ContactFactory(first_name="Bobby", last_name="Smith", company=acme)
    z = ContactFactory(first_name="Alice", last_name="Smith", company=acme)
    duplicates_find()
    candidate = pair(x, y)
    assert candidate.strength == "weak"
    assert 0.5 <= candidate.score <= 0.9
    assert candidate.reason == "Similar name and same company"
    assert pair(x, z) is None


def test_identical_name_scores_higher_than_prefix_or_initial() -> None:
    acme = CompanyFactory()
    exact = two(first_name="Maria", last_name="Meyer", company=acme)
    prefix = (ContactFactory(first_name="Chris", last_name="Brown", company=acme),
              ContactFactory(first_name="Christopher", last_name="Brown", company=acme))  # fmt: skip
    initial = (ContactFactory(first_name="J.", last_name="Novak", company=acme),
               ContactFactory(first_name="Jana", last_name="Novak", company=acme))  # fmt: skip
    spelled = (ContactFactory(first_name="Kurt", last_name="Meier", company=acme),
               ContactFactory(first_name="Kurt", last_name="Mayer", company=acme))  # fmt: skip
    duplicates_find()
    assert pair(*exact).score == pytest.approx(0.9)
    assert pair(*prefix).score == pytest.approx(0.8)
    assert pair(*initial).score == pytest.approx(0.7)
    assert pair(*spelled).score == pytest.approx(0.8)  # same name key, different spelling


def test_similar_name_and_same_business_domain_is_weak() -> None:
    x = ContactFactory(first_name="Anna", last_name="Berg")
    y = ContactFactory(first_name="Anna", last_name="Berg")
    identity(x, "email", "anna@globex.io")
    identity(y, "email", "a.berg@globex.io")
    duplicates_find()
    candidate = pair(x, y)
    assert candidate.strength == "weak"
    assert "globex.io" in candidate.reason


@pytest.mark.parametrize("domains", [("gmail.com", "gmail.com"), ("gmx.de", "gmx.de"), ("proton.me", "proton.me")])
def test_no_weak_match_across_freemail_domains(domains: tuple[str, str]) -> None:
    x = ContactFactory(first_name="Anna", last_name="Berg")
    y = ContactFactory(first_name="Anna", last_name="Berg")
    identity(x, "email", f"anna1@{domains[0]}")
    identity(y, "email", f"anna2@{domains[1]}")
    assert duplicates_find() == 0


def test_same_name_without_company_or_domain_is_not_a_match() -> None:
    two(first_name="Anna", last_name="Berg")
    assert duplicates_find() == 0


# --- Idempotence ----------------------------------------------------------------------------------------------


def _rows() -> list[tuple]:
    return list(
        DuplicateCandidate.objects.order_by("id").values_list("id", "contact_a_id", "contact_b_id", "status", "score")
    )


def test_task_run_twice_gives_the_same_rows() -> None:
    acme = CompanyFactory()
    two(first_name="Bob", last_name="Smith", company=acme)
    x, y = two()
    identity(x, "email", "jo@acme.com")
    identity(y, "email", "jo+1@acme.com")
    assert duplicates_find_task() == 2
    first = _rows()
    assert duplicates_find_task() == 2
    assert _rows() == first


def test_dismissed_pair_stays_dismissed_on_rescan() -> None:
    x, y = two()
    identity(x, "email", "jo@acme.com")
    identity(y, "email", "jo+1@acme.com")
    duplicates_find()
    DuplicateCandidate.objects.update(status=DuplicateCandidate.Status.DISMISSED)
    duplicates_find()
    assert pair(x, y).status == DuplicateCandidate.Status.DISMISSED
    assert DuplicateCandidate.objects.count() == 1


def test_open_pair_closes_when_contacts_no_longer_match() -> None:
    x, y = two()
    identity(x, "email", "jo@acme.com")
    other = identity(y, "email", "jo+1@acme.com")
    duplicates_find()
    assert pair(x, y) is not None
    other.delete()
    assert duplicates_find() == 0
    assert pair(x, y) is None


def test_scoped_run_only_touches_pairs_of_given_contacts() -> None:
    x, y = two()
    identity(x, "email", "jo@acme.com")
    identity(y, "email", "jo+1@acme.com")
    u, v = two()
    identity(u, "email", "al@acme.com")
    identity(v, "email", "al+1@acme.com")
    assert duplicates_find(contact_ids=[x.pk]) == 1
    assert pair(x, y) is not None and pair(u, v) is None
    assert duplicates_find(contact_ids=[]) == 0


# --- Review queue (page) --------------------------------------------------------------------------------------


def _strong_pair(x: Contact, y: Contact, local: str) -> DuplicateCandidate:
    identity(x, "email", f"{local}@acme.com")
    identity(y, "email", f"{local}+x@acme.com")
    duplicates_find(contact_ids=[x.pk])
    return pair(x, y)


def test_rep_gets_404_for_the_review_queue(client, world) -> None:  # type: ignore[no-untyped-def]
    client.force_login(world.a1)
    assert client.get(reverse("contacts:duplicate_list")).status_code == 404
    assert client.post(reverse("contacts:duplicate_scan")).status_code == 404
    candidate = _strong_pair(world.a1_shared, world.a2_shared, "ann")
    assert client.post(reverse("contacts:duplicate_dismiss", args=[candidate.pk])).status_code == 404
    candidate.refresh_from_db()
    assert candidate.status == "open"


def test_queue_lists_only_pairs_with_both_contacts_visible(client, world, django_assert_max_num_queries) -> None:  # type: ignore[no-untyped-def]
    both = _strong_pair(world.a1_shared, world.a2_shared, "ann")
    half = _strong_pair(world.a1_private, world.b1_shared, "abe")  # ma manages team A, not b1's contact
    for n in range(15):
        x = ContactFactory(owner=world.a1, team=world.team_a, visibility=Visibility.TEAM)
        y = ContactFactory(owner=world.a2, team=world.team_a, visibility=Visibility.TEAM)
        _strong_pair(x, y, f"p{n}")
    client.force_login(world.ma)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("contacts:duplicate_list"))
    assert response.status_code == 200
    ids = [c.pk for c in response.context["candidates"]]
    assert both.pk in ids and half.pk not in ids
    assert b"Duplicate review" in response.content
    admin_ids = [c.pk for c in client_for(world.admin).get(reverse("contacts:duplicate_list")).context["candidates"]]
    assert half.pk in admin_ids


def client_for(user):  # type: ignore[no-untyped-def]
    from django.test import Client

    c = Client()
    c.force_login(user)
    return c


def test_queue_is_keyset_paginated_strongest_first(world) -> None:  # type: ignore[no-untyped-def]
    from contacts.selectors.duplicates import duplicate_queue

    acme = CompanyFactory()
    weak = two(first_name="Bo", last_name="Li", company=acme, owner=world.a1, team=world.team_a)
    strong = [_strong_pair(*two(owner=world.a1, team=world.team_a), f"s{n}") for n in range(3)]
    duplicates_find()
    seen: list[int] = []
    after = None
    while True:
        rows, after = duplicate_queue(user=world.ma, after=after, limit=2)
        seen += [r.pk for r in rows]
        if after is None:
            break
    assert seen[:3] == sorted([c.pk for c in strong], reverse=True)
    assert seen[3] == pair(*weak).pk and len(seen) == 4


def test_bad_queue_cursor_is_a_clear_message(client, world) -> None:  # type: ignore[no-untyped-def]
    client.force_login(world.ma)
    response = client.get(reverse("contacts:duplicate_list") + "?after=nonsense", follow=True)
    assert "page link is invalid" in response.content.decode()


def test_dismiss_from_queue(client, world) -> None:  # type: ignore[no-untyped-def]
    candidate = _strong_pair(world.a1_shared, world.a2_shared, "ann")
    client.force_login(world.ma)
    response = client.post(reverse("contacts:duplicate_dismiss", args=[candidate.pk]), follow=True)
    assert "as different people" in response.content.decode()
    candidate.refresh_from_db()
    assert candidate.status == "dismissed" and candidate.reviewed_by == world.ma


def test_scan_button_enqueues_task_after_commit(client, world, monkeypatch, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    calls: list[tuple] = []
    monkeypatch.setattr(duplicates_find_task, "delay", lambda *a, **k: calls.append((a, k)))
    client.force_login(world.ma)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("contacts:duplicate_scan"), follow=True)
    assert "Duplicate scan started" in response.content.decode()
    assert calls == [((), {})]


def test_contact_list_links_queue_for_managers_only(client, world) -> None:  # type: ignore[no-untyped-def]
    client.force_login(world.ma)
    assert "Review duplicates" in client.get(reverse("contacts:list")).content.decode()
    client.force_login(world.a1)
    assert "Review duplicates" not in client.get(reverse("contacts:list")).content.decode()


# --- API ------------------------------------------------------------------------------------------------------


def test_api_duplicates_list_dismiss_and_scan(api_client, world, monkeypatch, django_assert_max_num_queries) -> None:  # type: ignore[no-untyped-def]
    candidate = _strong_pair(world.a1_shared, world.a2_shared, "ann")
    hidden = _strong_pair(world.a1_private, world.b1_shared, "abe")
    api_client.force_authenticate(world.ma)
    with django_assert_max_num_queries(10):
        response = api_client.get("/api/v1/duplicates/")
    assert response.status_code == 200
    assert [r["id"] for r in response.json()["results"]] == [candidate.pk]
    assert api_client.post(f"/api/v1/duplicates/{hidden.pk}/dismiss/").status_code == 404
    response = api_client.post(f"/api/v1/duplicates/{candidate.pk}/dismiss/")
    assert response.status_code == 200 and response.json()["status"] == "dismissed"
    monkeypatch.setattr(duplicates_find_task, "delay", lambda *a, **k: None)
    assert api_client.post("/api/v1/duplicates/scan/").status_code == 202


def test_api_duplicates_are_404_for_reps(api_client, world) -> None:  # type: ignore[no-untyped-def]
    candidate = _strong_pair(world.a1_shared, world.a2_shared, "ann")
    api_client.force_authenticate(world.a1)
    assert api_client.get("/api/v1/duplicates/").status_code == 404
    response = api_client.post(f"/api/v1/duplicates/{candidate.pk}/dismiss/")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert api_client.post("/api/v1/duplicates/scan/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_real_worker_runs_the_scan(world, redis_client) -> None:  # type: ignore[no-untyped-def]
    import time

    from celery.contrib.testing.worker import start_worker

    from crm.celery import app

    x, y = two()
    identity(x, "email", "real@acme.com")
    identity(y, "email", "real+worker@acme.com")
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        duplicates_find_task.delay()  # through the real Redis broker, consumed by a real worker
        deadline = time.monotonic() + 20
        while pair(x, y) is None and time.monotonic() < deadline:
            time.sleep(0.1)
    assert pair(x, y).strength == "strong"
