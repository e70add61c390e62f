"""Rule actions: in-app alerts and activities behind atomically claimed cooldowns, tags, and the e-mail digest."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.utils import timezone

from accounts.models import Notification, Visibility
from activities.models import Activity
from contacts.models import ContactIdentity
from listening.models import ListeningRule, RuleActionState
from listening.services import cooldowns_claim, mention_digests_send
from tests.listening.factories import ingest_email, ingest_posts, make_rule, make_source, public_post
from tests.threads.factories import ChannelAccountFactory
from threads.connectors import Party

pytestmark = pytest.mark.django_db


def alerts(user) -> list[Notification]:  # type: ignore[no-untyped-def]
    return list(user.notifications.filter(message__startswith="Listening:").order_by("id"))


def age_cooldowns(minutes: int) -> None:
    """As if the last firing of every action happened ``minutes`` earlier."""
    for state in RuleActionState.objects.all():
        state.last_fired_at -= dt.timedelta(minutes=minutes)
        state.save()


def twitter_author(contact, handle: str) -> Party:  # type: ignore[no-untyped-def]
    ContactIdentity.objects.get_or_create(
        kind="twitter", normalized=f"@{handle}", defaults={"contact": contact, "value": f"@{handle}"}
    )
    return Party("twitter", f"@{handle}", handle.title(), "from", handle)


@pytest.fixture
def source(world):  # type: ignore[no-untyped-def]
    return make_source(world.admin, team=world.team_a)  # readable by team A, whose members write the rules


def test_two_matches_inside_the_cooldown_alert_once_and_after_it_twice(world, source) -> None:
    rule = make_rule(world.a1, query="acme", alert_cooldown_minutes=60, spike_alerts=False)
    first = ingest_posts(source, [public_post("acme one"), public_post("acme two")])
    second = ingest_posts(source, [public_post("acme three")])
    assert (first.alerts, second.alerts) == (1, 0) and len(alerts(world.a1)) == 1
    assert "2 new mentions" in alerts(world.a1)[0].message and alerts(world.a1)[0].url.endswith(f"?rule={rule.pk}")
    age_cooldowns(61)
    assert ingest_posts(source, [public_post("acme four")]).alerts == 1
    assert len(alerts(world.a1)) == 2
    assert not world.a2.notifications.exists()  # a teammate who did not write the rule is not disturbed


def test_a_zero_cooldown_alerts_on_every_batch(world, source) -> None:
    make_rule(world.a1, query="acme", alert_cooldown_minutes=0, spike_alerts=False)
    ingest_posts(source, [public_post("acme one")])
    ingest_posts(source, [public_post("acme two")])
    assert len(alerts(world.a1)) == 2


def test_a_claim_fires_once_however_often_it_is_asked(world) -> None:
    rule = make_rule(world.a1, query="acme")
    now = timezone.now()
    claims = [(rule.pk, "alert", ""), (rule.pk, "alert", ""), (rule.pk, "activity", "contact:1")]
    assert cooldowns_claim(claims, now) == {(rule.pk, "alert", ""), (rule.pk, "activity", "contact:1")}
    assert cooldowns_claim(claims, now + dt.timedelta(minutes=59)) == set()
    # The rule's current cooldown decides: shortened to 10 minutes, the alert may fire again, the activity not.
    ListeningRule.objects.filter(pk=rule.pk).update(alert_cooldown_minutes=10)
    assert cooldowns_claim(claims, now + dt.timedelta(minutes=11)) == {(rule.pk, "alert", "")}


def test_the_managers_hear_a_team_rule_whose_owner_left(world, source) -> None:
    make_rule(world.a1, query="acme", spike_alerts=False)
    world.a1.is_active = False
    world.a1.save()
    ingest_posts(source, [public_post("acme")])
    assert not alerts(world.a1) and len(alerts(world.ma)) == 1


def test_activities_go_to_the_contact_owner_once_per_contact_within_the_cooldown(world, source) -> None:
    rule = make_rule(
        world.ma, query="acme", activity_for="contact_owner", activity_title="Call about Acme", activity_kind="call",
        activity_cooldown_minutes=1440, alert_in_app=False, spike_alerts=False,
    )  # fmt: skip
    ann, amy = twitter_author(world.a1_shared, "ann"), twitter_author(world.a2_shared, "amy")
    result = ingest_posts(
        source,
        [public_post("acme a", author=ann), public_post("acme b", author=ann), public_post("acme c", author=amy)],
    )
    assert result.activities == 2
    ingest_posts(source, [public_post("acme again", author=ann)])
    activities = list(Activity.objects.order_by("id"))
    assert [(a.owner, a.contact, a.kind, a.subject) for a in activities] == [
        (world.a1, world.a1_shared, "call", "Call about Acme"),
        (world.a2, world.a2_shared, "call", "Call about Acme"),
    ]
    assert "acme a" in activities[0].notes and activities[0].created_by == world.ma
    age_cooldowns(1441)
    ingest_posts(source, [public_post("acme later", author=ann)])
    assert Activity.objects.filter(contact=world.a1_shared).count() == 2 and rule.pk


def test_rule_owner_activities_and_tags_reach_only_contacts_the_owner_sees(world, source) -> None:
    make_rule(world.a1, query="acme", activity_for="rule_owner", tag="acme-fan", alert_in_app=False, spike_alerts=False)
    mine, theirs = twitter_author(world.a1_shared, "ann"), twitter_author(world.b1_shared, "bea")
    result = ingest_posts(source, [public_post("acme!", author=mine), public_post("acme!!", author=theirs)])
    assert (result.activities, result.tagged) == (1, 1)
    assert list(Activity.objects.values_list("owner", "contact")) == [(world.a1.pk, world.a1_shared.pk)]
    world.a1_shared.refresh_from_db()
    world.b1_shared.refresh_from_db()
    assert world.a1_shared.tags == ["acme-fan"] and world.b1_shared.tags == []
    assert ingest_posts(source, [public_post("acme again", author=mine)]).tagged == 0  # already tagged
    world.a1_shared.refresh_from_db()
    assert world.a1_shared.tags == ["acme-fan"]


def test_a_private_mailbox_text_stays_out_of_activity_notes(world) -> None:
    ContactIdentity.objects.create(contact=world.a1_shared, kind="email", value="ann@example.com",
                                   normalized="ann@example.com")  # fmt: skip
    box = ChannelAccountFactory(owner=world.a1, team=world.team_a, visibility=Visibility.PRIVATE)
    make_rule(world.a1, query="acme", activity_for="contact_owner", alert_in_app=False, spike_alerts=False)
    message = ingest_email(box, "ann@example.com", "acme: our secret merger")
    from listening.services import mentions_evaluate_messages

    assert mentions_evaluate_messages(message_ids=[message.pk]).activities == 1
    assert "secret merger" not in Activity.objects.get().notes


# --- Digest -----------------------------------------------------------------------------------------------------


def test_the_digest_mails_each_owner_once_and_advances(world, source) -> None:
    rule = make_rule(world.a1, query="acme", alert_email_digest=True, alert_in_app=False, spike_alerts=False)
    ListeningRule.objects.filter(pk=rule.pk).update(created_at=timezone.now() - dt.timedelta(days=2))
    ingest_posts(source, [public_post("acme is great"), public_post("acme is slow")])
    assert mention_digests_send() == 1
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [world.a1.email]
    body = mail.outbox[0].body
    assert rule.name in body and "acme is great" in body and "acme is slow" in body
    assert mention_digests_send() == 0 and len(mail.outbox) == 1  # nothing new: nothing sent
    rule.refresh_from_db()
    assert rule.digest_sent_at is not None
    ingest_posts(source, [public_post("acme third")])
    assert mention_digests_send() == 1 and "acme third" in mail.outbox[1].body
    assert "acme is great" not in mail.outbox[1].body


def test_a_failed_digest_is_sent_on_the_next_run(world, source, monkeypatch) -> None:
    make_rule(world.a1, query="acme", alert_email_digest=True, alert_in_app=False, spike_alerts=False)
    ingest_posts(source, [public_post("acme")])
    from listening.services import digest

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError("mail server down")

    monkeypatch.setattr(digest, "send_mail", broken)
    assert mention_digests_send() == 0
    monkeypatch.undo()
    assert mention_digests_send() == 1 and "acme" in mail.outbox[0].body


def test_the_digest_shows_only_what_the_owner_may_see(world) -> None:
    for contact, address in ((world.a1_shared, "ann@example.com"), (world.b1_shared, "bea@example.com")):
        ContactIdentity.objects.create(contact=contact, kind="email", value=address, normalized=address)
    account = ChannelAccountFactory(owner=world.admin, team=world.team_a)
    rule = make_rule(world.a1, query="acme", alert_email_digest=True, alert_in_app=False, spike_alerts=False)
    ListeningRule.objects.filter(pk=rule.pk).update(created_at=timezone.now() - dt.timedelta(days=1))
    from listening.services import mentions_evaluate_messages

    ids = [ingest_email(account, a, f"acme from {a}").pk for a in ("ann@example.com", "bea@example.com")]
    mentions_evaluate_messages(message_ids=ids)
    assert mention_digests_send() == 1
    body = mail.outbox[0].body
    assert "acme from ann@example.com" in body and "bea@example.com" not in body
