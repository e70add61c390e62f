"""Fixtures every test may use. Tests run on real PostgreSQL and Redis; with CI=true a missing service fails."""

from __future__ import annotations

import os

import pytest
import redis
from django.conf import settings
from rest_framework.test import APIClient

from accounts.models import Team, User, Visibility
from tests.accounts.factories import TeamFactory, UserFactory, membership
from tests.contacts.factories import ContactFactory

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_service(name: str, reason: str) -> None:
    """A test that needs a missing service skips on a laptop and fails in CI, where a skip would hide a gap."""
    message = f"{name} is not available: {reason}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_client() -> redis.Redis:
    client = redis.Redis.from_url(settings.REDIS_CLIENT_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        require_service("Redis", str(exc))
    return client


@pytest.fixture(autouse=True)
def _isolated_cache(redis_client: redis.Redis) -> None:
    """Each test starts with an empty cache (axes lockouts, heartbeat) on the real Redis."""
    from django.core.cache import cache

    cache.clear()
    redis_client.delete("threadline:worker-heartbeat")


class World:
    """Two teams with reps, a manager of team A, an admin, and one contact per visibility case.

    Team A: rep a1, rep a2, manager ma.  Team B: rep b1.
    """

    def __init__(self) -> None:
        self.team_a: Team = TeamFactory(name="Team A")
        self.team_b: Team = TeamFactory(name="Team B")
        self.a1: User = membership(UserFactory(username="a1"), self.team_a)
        self.a2: User = membership(UserFactory(username="a2"), self.team_a)
        self.b1: User = membership(UserFactory(username="b1"), self.team_b)
        self.ma: User = membership(UserFactory(username="ma", role=User.Role.MANAGER), self.team_a, manager=True)
        self.admin: User = UserFactory(username="root", role=User.Role.ADMIN)
        self.a1_shared = ContactFactory(first_name="Ann", last_name="Shared", owner=self.a1, team=self.team_a)
        self.a1_private = ContactFactory(
            first_name="Abe", last_name="Private", owner=self.a1, team=self.team_a, visibility=Visibility.PRIVATE
        )
        self.a2_shared = ContactFactory(first_name="Amy", last_name="Teamwide", owner=self.a2, team=self.team_a)
        self.a2_private = ContactFactory(
            first_name="Al", last_name="Secret", owner=self.a2, team=self.team_a, visibility=Visibility.PRIVATE
        )
        self.b1_shared = ContactFactory(first_name="Bea", last_name="Other", owner=self.b1, team=self.team_b)

    @property
    def contacts(self) -> dict[str, object]:
        return {
            "a1_shared": self.a1_shared,
            "a1_private": self.a1_private,
            "a2_shared": self.a2_shared,
            "a2_private": self.a2_private,
            "b1_shared": self.b1_shared,
        }


@pytest.fixture
def world(db: None) -> World:
    return World()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()
