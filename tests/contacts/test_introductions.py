""" "Who can introduce me": shortest paths of up to three hops, in SQL, through visible contacts only."""

from __future__ import annotations

from itertools import pairwise

import pytest

from accounts.models import Visibility
from contacts.models import Contact, Relationship
from contacts.selectors.relationships import introduction_paths
from tests.contacts.factories import ContactFactory

pytestmark = pytest.mark.django_db


def hub(world, name: str) -> Contact:  # type: ignore[no-untyped-def]
    """A contact team A can see but nobody in team A owns: never a starting point, only a step."""
    return ContactFactory(first_name=name, last_name="Hub", owner=world.admin, team=world.team_a)


def link(a: Contact, b: Contact, kind: str = "friend") -> None:
    Relationship.objects.create(from_contact=a, to_contact=b, kind=kind)


def names(paths) -> list[list[str]]:  # type: ignore[no-untyped-def]
    return [[c.first_name for c in p.contacts] for p in paths]


def test_one_two_and_three_hops_shortest_first(world) -> None:
    t1, t2, t3 = hub(world, "T1"), hub(world, "T2"), hub(world, "T3")
    h1, h2 = hub(world, "H1"), hub(world, "H2")
    link(world.a1_shared, t1, "colleague")
    link(h1, t2)
    link(world.a2_shared, h1, "reports_to")
    link(world.a1_private, h1)
    link(h1, h2)
    link(h2, t3, "family")
    assert names(introduction_paths(user=world.a1, target=t1)) == [["Ann", "T1"]]
    two = introduction_paths(user=world.a1, target=t2)
    assert sorted(names(two)) == [["Abe", "H1", "T2"], ["Amy", "H1", "T2"]]
    assert {p.hops for p in two} == {2}
    three = introduction_paths(user=world.a1, target=t3)
    assert sorted(names(three)) == [["Abe", "H1", "H2", "T3"], ["Amy", "H1", "H2", "T3"]]
    amy = next(p for p in three if p.introducer == world.a2_shared)
    assert amy.kinds == ["reports_to", "friend", "family"]
    assert amy.forward == [True, True, True]


def test_nothing_beyond_three_hops(world) -> None:
    chain = [hub(world, f"C{i}") for i in range(4)]
    link(world.a1_shared, chain[0])
    for a, b in pairwise(chain):
        link(a, b)
    assert [p.hops for p in introduction_paths(user=world.a1, target=chain[2])] == [3]
    assert introduction_paths(user=world.a1, target=chain[3]) == []


def test_only_the_shortest_path_per_introducer_and_edges_walk_both_ways(world) -> None:
    target, h1 = hub(world, "Target"), hub(world, "H1")
    link(target, world.a1_shared, "advisor")  # stored pointing at the introducer
    link(world.a1_shared, h1)
    link(h1, target)
    paths = introduction_paths(user=world.a1, target=target)
    assert names(paths) == [["Ann", "Target"]]
    assert paths[0].forward == [False]  # the stored edge points from the target to Ann
    assert paths[0].kinds == ["advisor"]


def test_cycles_do_not_loop_or_repeat_contacts(world) -> None:
    target = hub(world, "Target")
    x, y, z = hub(world, "X"), hub(world, "Y"), hub(world, "Z")
    link(x, y)
    link(y, z)
    link(z, x)
    link(y, x, "colleague")
    link(world.a1_shared, x)
    link(z, target)
    paths = introduction_paths(user=world.a1, target=target)
    assert names(paths) == [["Ann", "X", "Z", "Target"]]
    for path in paths:
        assert len({c.pk for c in path.contacts}) == len(path.contacts)


def test_paths_never_pass_through_invisible_contacts(world) -> None:
    target = hub(world, "Target")
    link(world.a1_shared, world.b1_shared)  # b1_shared is team B's: invisible to a1
    link(world.b1_shared, target)
    link(world.a1_shared, world.a2_private)  # a2's private contact: invisible to a1
    link(world.a2_private, target)
    assert introduction_paths(user=world.a1, target=target) == []
    # a2 may see their own private contact, which is also the nearest introducer for them; Ann's longer path runs
    # through it and so is not the shortest for anyone.
    assert names(introduction_paths(user=world.a2, target=target)) == [["Al", "Target"]]


def test_private_contacts_of_teammates_are_not_starting_points(world) -> None:
    target = hub(world, "Target")
    link(world.a2_private, target)
    assert introduction_paths(user=world.a1, target=target) == []
    assert names(introduction_paths(user=world.a2, target=target)) == [["Al", "Target"]]


def test_other_teams_contacts_are_not_starting_points(world) -> None:
    target = ContactFactory(first_name="Shared", owner=world.admin, team=world.team_b, visibility=Visibility.TEAM)
    link(world.b1_shared, target)
    assert introduction_paths(user=world.b1, target=target)[0].introducer == world.b1_shared
    assert introduction_paths(user=world.a1, target=target) == []


def test_target_owned_by_me_is_not_its_own_introducer_and_limit_applies(world) -> None:
    starts = [ContactFactory(first_name=f"S{i}", owner=world.a1, team=world.team_a) for i in range(5)]
    for s in starts:
        link(s, world.a1_shared)
    paths = introduction_paths(user=world.a1, target=world.a1_shared, limit=3)
    assert len(paths) == 3
    assert all(p.hops == 1 and p.contacts[-1] == world.a1_shared for p in paths)


def test_query_count_is_constant(world, django_assert_max_num_queries) -> None:
    target = hub(world, "Target")
    hubs = [hub(world, f"H{i}") for i in range(10)]
    for h in hubs:
        link(world.a1_shared, h)
        link(h, target)
    world.a1._team_ids_cache = None
    with django_assert_max_num_queries(4):
        paths = introduction_paths(user=world.a1, target=target)
    assert names(paths) == [["Ann", hubs[0].first_name, "Target"]]


def test_api_returns_paths_and_hides_invisible_targets(api_client, world) -> None:
    target = hub(world, "Target")
    link(world.a1_shared, target, "colleague")
    api_client.force_authenticate(world.a1)
    response = api_client.get(f"/api/v1/contacts/{target.pk}/introductions/")
    assert response.status_code == 200
    assert response.json() == [
        {
            "hops": 1,
            "contacts": [
                {"id": world.a1_shared.pk, "display_name": "Ann Shared"},
                {"id": target.pk, "display_name": "Target Hub"},
            ],
            "kinds": ["colleague"],
            "forward": [True],
        }
    ]
    assert api_client.get(f"/api/v1/contacts/{world.b1_shared.pk}/introductions/").status_code == 404
