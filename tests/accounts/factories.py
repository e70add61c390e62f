from __future__ import annotations

import factory

from accounts.models import Membership, Team, User


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Team {n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    role = User.Role.REP
    is_staff = factory.LazyAttribute(lambda u: u.role == User.Role.ADMIN)
    is_superuser = factory.LazyAttribute(lambda u: u.role == User.Role.ADMIN)
    password = factory.django.Password("correct-horse-battery")


def membership(user: User, team: Team, *, manager: bool = False) -> User:
    Membership.objects.update_or_create(user=user, team=team, defaults={"is_manager": manager})
    return user
