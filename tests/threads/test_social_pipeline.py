"""Pipeline rules the social channels rely on: deleted posts are marked (never dropped, never resurrected), a social
identity follows its numeric id through handle changes, and consent stops replies on an opted-out channel."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.urls import reverse
from django.utils import timezone

from contacts.models import ContactIdentity
from contacts.services.consent import consent_set
from crm.errors import DomainError
from tests.threads.conversation_helpers import identity, ingest
from tests.threads.factories import ChannelAccountFactory
from threads import connectors
from threads.connectors import NormalizedMessage, Party, SendResult
from threads.models import ChannelAccount, Message, Thread
from threads.services.send import message_send

pytestmark = pytest.mark.django_db


def tweet(tweet_id: str, *, user_id: str = "1001", handle: str = "AnnSmith", text: str = "hi", deleted: bool = False):  # type: ignore[no-untyped-def]
    author = Party("twitter", user_id, "Ann Smith", "from", handle)
    return NormalizedMessage(
        channel="twitter", direction="inbound", external_id=tweet_id, sent_at=timezone.now() - dt.timedelta(minutes=5),
        provider_thread_key="twitter:conv:1", author=author, counterparts=[author], body_text=text,
        body_display=text, deleted=deleted,
    )  # fmt: skip


@pytest.fixture
def x_account(world) -> ChannelAccount:
    return ChannelAccountFactory(kind="twitter", owner=world.ma, team=world.team_a, address="@ourco")


def test_deletion_marks_the_stored_message(world, x_account, client) -> None:
    identity(world.a1_shared, "1001", kind="twitter")
    (mid,) = ingest(x_account, [tweet("t1", text="my order is late")])
    assert ingest(x_account, [tweet("t1", deleted=True, text="")]) == []
    message = Message.objects.get(pk=mid)
    assert message.deleted_at is not None and message.body_text == "my order is late"
    client.force_login(world.a1)
    page = client.get(reverse("threads:detail", args=[message.thread_id])).content.decode()
    assert "Deleted on Twitter/X" in page and "my order is late" in page


def test_deletion_seen_first_leaves_a_tombstone_the_copy_cannot_undelete(world, x_account) -> None:
    identity(world.a1_shared, "1001", kind="twitter")
    (mid,) = ingest(x_account, [tweet("t2", deleted=True, text="")])
    assert Message.objects.get(pk=mid).deleted_at is not None
    assert ingest(x_account, [tweet("t2", text="late copy")]) == []
    assert Message.objects.get(pk=mid).deleted_at is not None


def test_identity_entered_as_handle_is_upgraded_to_the_numeric_id(world, x_account) -> None:
    ContactIdentity.objects.create(contact=world.a1_shared, kind="twitter", value="@AnnSmith", normalized="@annsmith")
    (mid,) = ingest(x_account, [tweet("t3")])
    assert Message.objects.get(pk=mid).contact_id == world.a1_shared.pk
    ident = ContactIdentity.objects.get(contact=world.a1_shared, kind="twitter")
    assert ident.normalized == "1001" and ident.handle == "AnnSmith"


def test_changed_handle_keeps_the_identity_and_records_the_new_handle(world, x_account) -> None:
    ContactIdentity.objects.create(
        contact=world.a1_shared, kind="twitter", value="AnnSmith", normalized="1001", handle="AnnSmith"
    )
    ingest(x_account, [tweet("t4", handle="AnnTheBuilder")])
    idents = list(ContactIdentity.objects.filter(kind="twitter"))
    assert len(idents) == 1 and idents[0].contact_id == world.a1_shared.pk
    assert idents[0].handle == "AnnTheBuilder"
    assert Message.objects.get(external_id="t4").contact_id == world.a1_shared.pk


def test_no_reply_on_a_channel_the_contact_opted_out_of(world, x_account, monkeypatch, client) -> None:
    monkeypatch.setitem(connectors._SENDERS, "twitter", lambda account, draft: SendResult("x1"))
    monkeypatch.setitem(connectors._PREPARERS, "twitter", lambda account, draft, thread, reply_to: _with_id(draft))
    identity(world.a1_shared, "1001", kind="twitter")
    ingest(x_account, [tweet("t5", text="hello")])
    thread = Thread.objects.get(contact=world.a1_shared, topic="")
    consent_set(contact=world.a1_shared, channel="twitter", status="opted_out", source="test", actor=None)
    with pytest.raises(DomainError, match="opted out of Twitter/X"):
        message_send(
            actor=world.ma, thread=thread, account=x_account, to=[Party("twitter", "1001", "", "to", "AnnSmith")],
            body_text="Sorry to hear that",
        )  # fmt: skip
    # The thread page disables Send for that channel and says why.
    client.force_login(world.ma)
    page = client.get(reverse("threads:detail", args=[thread.pk])).content.decode()
    assert 'id="reply-send" disabled' in page and "opted out of Twitter/X" in page
    data = json.loads(page.split('id="reply-blocked-data" type="application/json">')[1].split("</script>")[0])
    assert data == {str(x_account.pk): f"{world.a1_shared} opted out of Twitter/X."}


def _with_id(draft):  # type: ignore[no-untyped-def]
    draft.external_id = "pending-1"
    return draft


def test_contact_page_links_each_social_identity_to_its_profile(world, client) -> None:
    ContactIdentity.objects.create(
        contact=world.a1_shared, kind="twitter", value="AnnSmith", normalized="1001", handle="AnnSmith"
    )
    ContactIdentity.objects.create(contact=world.a1_shared, kind="facebook", value="5566", normalized="5566")
    client.force_login(world.a1)
    page = client.get(reverse("contacts:detail", args=[world.a1_shared.pk])).content.decode()
    assert 'href="https://x.com/i/user/1001"' in page and "@AnnSmith" in page and "id 1001" in page
    assert 'href="https://www.facebook.com/5566"' in page


def test_a_message_stored_before_creates_no_lead_when_it_comes_again(world, x_account) -> None:
    tombstone = tweet("t9", user_id="4242", handle="Newcomer", deleted=True, text="")
    tombstone.author, tombstone.counterparts = None, []  # a deletion notice names no author
    (mid,) = ingest(x_account, [tombstone])
    assert Message.objects.get(pk=mid).deleted_at is not None
    assert not ContactIdentity.objects.filter(kind="twitter").exists()
    assert ingest(x_account, [tweet("t9", user_id="4242", handle="Newcomer", text="late copy")]) == []
    assert not ContactIdentity.objects.filter(kind="twitter").exists()  # no lead for a message already stored
