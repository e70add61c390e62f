"""The notification area: producers are idempotent, the page and the htmx panel list unread ones."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.services import notification_create
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_dedupe_key_makes_producers_idempotent() -> None:
    user = UserFactory()
    assert notification_create(user=user, message="Tweet from @acme", dedupe_key="mention:1") is not None
    assert notification_create(user=user, message="Tweet from @acme", dedupe_key="mention:1") is None
    assert user.notifications.count() == 1


def test_page_and_panel_list_unread_then_mark_read(client) -> None:
    user = UserFactory()
    notification_create(user=user, message="Call Jane back", url="/contacts/1/")
    client.force_login(user)
    assert "Call Jane back" in client.get(reverse("accounts:notifications")).content.decode()
    panel = client.get(reverse("accounts:notifications"), HTTP_HX_REQUEST="true")
    assert "notification-panel" in panel.content.decode() and "Call Jane back" in panel.content.decode()
    client.post(reverse("accounts:notifications_read"), HTTP_HX_REQUEST="true")
    assert "No new notifications." in client.get(reverse("accounts:notifications")).content.decode()
    assert user.notifications.filter(read_at__isnull=True).count() == 0
