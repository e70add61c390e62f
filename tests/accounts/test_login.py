"""Sign-in, sign-out, password reset and login throttling (django-axes)."""

from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse

from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "correct-horse-battery"


def test_wrong_password_gets_clear_message(client) -> None:
    UserFactory(username="jane")
    response = client.post(reverse("accounts:login"), {"username": "jane", "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_login_then_my_day_then_logout(client) -> None:
    UserFactory(username="jane")
    response = client.post(reverse("accounts:login"), {"username": "jane", "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("my_day")
    assert b"My day" in response.content
    response = client.post(reverse("accounts:logout"), follow=True)
    assert b"You have signed out." in response.content
    assert client.get(reverse("my_day")).status_code == 302


def test_repeated_failures_lock_out_even_the_right_password(client, settings) -> None:
    UserFactory(username="jane")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("accounts:login"), {"username": "jane", "password": "guess"})
    response = client.post(reverse("accounts:login"), {"username": "jane", "password": PASSWORD})
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert client.get(reverse("my_day")).status_code == 302  # not signed in


def test_lockout_is_per_username_and_address(client, settings) -> None:
    UserFactory(username="jane")
    UserFactory(username="joe")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("accounts:login"), {"username": "jane", "password": "guess"})
    response = client.post(reverse("accounts:login"), {"username": "joe", "password": PASSWORD})
    assert response.status_code == 302


def test_password_reset_sends_a_working_link(client) -> None:
    UserFactory(username="jane", email="jane@example.com")
    client.post(reverse("accounts:password_reset"), {"email": "jane@example.com"})
    assert len(mail.outbox) == 1
    link = next(line for line in mail.outbox[0].body.splitlines() if "/accounts/reset/" in line).strip()
    path = link[link.index("/accounts/reset/") :]
    form_page = client.get(path, follow=True)
    assert form_page.status_code == 200
    done = client.post(
        form_page.redirect_chain[-1][0], {"new_password1": "a-New-pass-4567", "new_password2": "a-New-pass-4567"}
    )
    assert done.status_code == 302
    response = client.post(reverse("accounts:login"), {"username": "jane", "password": "a-New-pass-4567"})
    assert response.status_code == 302


def test_unknown_email_reset_reveals_nothing(client) -> None:
    response = client.post(reverse("accounts:password_reset"), {"email": "nobody@example.com"}, follow=True)
    assert response.status_code == 200
    assert len(mail.outbox) == 0
