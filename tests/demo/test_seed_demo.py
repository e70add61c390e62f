from __future__ import annotations

import pytest
from django.core.management import call_command

from accounts.models import Membership, Team, User
from activities.models import Activity
from contacts.models import Company, Contact, ContactIdentity
from threads.models import Message, Thread

pytestmark = pytest.mark.django_db


def _counts() -> tuple[int, ...]:
    return tuple(
        m.objects.count()
        for m in (Team, User, Membership, Company, Contact, ContactIdentity, Message, Thread, Activity)
    )


def test_seed_demo_is_idempotent(capsys) -> None:
    call_command("seed_demo")
    first = _counts()
    assert first[:5] == (3, 10, 10, 200, 2000)
    assert first[6] > 100 and first[7] > 50 and first[8] > 40  # conversations and activities for each rep
    assert Thread.objects.filter(awaiting_reply=True).exists()  # some wait for a reply on My day
    # Social channels land in the same threads as e-mail.
    channels = set(Message.objects.values_list("channel", flat=True).distinct())
    assert {"email", "twitter", "facebook", "sms"} <= channels
    social_threads = set(Message.objects.exclude(channel="email").values_list("thread_id", flat=True))
    assert Message.objects.filter(thread_id__in=social_threads, channel="email").exists()
    assert User.objects.filter(role=User.Role.MANAGER).count() == 3
    assert Contact.objects.filter(search_vector__isnull=True).count() == 0
    call_command("seed_demo")
    assert _counts() == first
    assert (
        "created 0 teams, 0 users, 0 companies, 0 contacts, 0 identities, 0 messages, 0 activities"
        in capsys.readouterr().out
    )


def test_demo_user_can_sign_in(client) -> None:
    call_command("seed_demo")
    response = client.post("/accounts/login/", {"username": "marcus", "password": "threadline-demo"})
    assert response.status_code == 302


def test_ensure_admin_prints_password_once(capsys, client) -> None:
    call_command("ensure_admin")
    out = capsys.readouterr().out
    password = out.split("with password ")[1].split()[0]
    call_command("ensure_admin")
    assert password not in capsys.readouterr().out
    assert client.post("/accounts/login/", {"username": "admin", "password": password}).status_code == 302
    assert User.objects.get(username="admin").is_admin_role
