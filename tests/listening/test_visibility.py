"""Who sees which rule and mention: reps a1 and b1, manager ma and the admin; private mailbox text; charts."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from accounts.models import Visibility
from contacts.models import ContactIdentity
from crm.errors import DomainError, NotFound
from listening import selectors
from listening.models import Mention
from listening.selectors import MentionFilters
from listening.services import mentions_evaluate_messages
from tests.listening.factories import ingest_email, ingest_posts, make_rule, make_source, public_post
from tests.threads.factories import ChannelAccountFactory
from threads.connectors import Party

pytestmark = pytest.mark.django_db

ADDRESSES = {
    "a1_shared": "ann@example.com", "a1_private": "abe@example.com", "a2_shared": "amy@example.com",
    "a2_private": "al@example.com", "b1_shared": "bea@example.com",
}  # fmt: skip


@pytest.fixture
def heard(world):  # type: ignore[no-untyped-def]
    """One team-A rule, a mention of a message from every contact of the world, one from a2's private mailbox,
    and a public post by b1's contact."""
    for name, address in ADDRESSES.items():
        ContactIdentity.objects.create(contact=world.contacts[name], kind="email", value=address, normalized=address)
    ContactIdentity.objects.create(contact=world.b1_shared, kind="twitter", value="@bea", normalized="@bea")
    rule = make_rule(world.a1, query="acme", name="Acme", alert_in_app=False, spike_alerts=False)
    team_box = ChannelAccountFactory(owner=world.admin, team=world.team_a)
    private_box = ChannelAccountFactory(owner=world.a2, team=world.team_a, visibility=Visibility.PRIVATE)
    ids = [ingest_email(team_box, address, f"acme from {name}").pk for name, address in ADDRESSES.items()]
    ids.append(ingest_email(private_box, "ann@example.com", "acme secret in a2's mailbox").pk)
    mentions_evaluate_messages(message_ids=ids)
    source = make_source(world.a1)
    ingest_posts(source, [public_post("acme tweet by bea", author=Party("twitter", "@bea", "Bea", "from", "bea"))])
    return rule


def texts(user) -> set[str]:  # type: ignore[no-untyped-def]
    page = selectors.mention_list(user=user, filters=MentionFilters())
    return {m.snippet.replace("Hello ", "") or f"(hidden {m.channel})" for m in page.items}


def test_a_rep_sees_the_mentions_of_contacts_they_see(world, heard) -> None:
    assert texts(world.a1) == {
        "acme from a1_shared", "acme from a1_private", "acme from a2_shared", "acme tweet by bea", "(hidden email)",
    }  # fmt: skip


def test_the_mailbox_owner_reads_their_private_message(world, heard) -> None:
    assert "acme secret in a2's mailbox" in texts(world.a2) and "acme from a2_private" in texts(world.a2)


def test_a_rep_of_another_team_sees_nothing_of_a_team_a_rule(world, heard) -> None:
    assert texts(world.b1) == set()
    assert not selectors.rule_list(user=world.b1).exists()
    with pytest.raises(NotFound):
        selectors.rule_get(user=world.b1, pk=heard.pk)


def test_the_manager_sees_the_teams_private_contacts_and_the_admin_everything(world, heard) -> None:
    managed = texts(world.ma)
    assert "acme from a2_private" in managed and "acme from b1_shared" not in managed
    assert "(hidden email)" in managed  # the private mailbox is a2's alone, manager or not
    everything = texts(world.admin)
    assert "acme from b1_shared" in everything and "(hidden email)" in everything and len(everything) == 7


def test_hidden_text_blanks_highlights_and_terms_too(world, heard) -> None:
    hidden = [m for m in selectors.mention_list(user=world.a1, filters=MentionFilters()).items if not m.snippet]
    assert len(hidden) == 1
    assert hidden[0].highlights == [] and hidden[0].matched_terms == [] and hidden[0].text_hidden


def test_a_post_mention_hides_a_contact_the_user_may_not_see(world, heard) -> None:
    post_mention = next(m for m in selectors.mention_list(user=world.a1, filters=MentionFilters()).items if m.post_id)
    assert post_mention.contact_id is None and post_mention.contact is None
    seen_by_b1_team_admin = selectors.mention_get(user=world.admin, pk=post_mention.pk)
    assert seen_by_b1_team_admin.contact == world.b1_shared


def test_contact_mentions_need_the_contact(world, heard) -> None:
    # Ann's message in a2's private mailbox shows as a mention, without its text.
    assert [m.snippet for m in selectors.contact_mentions(user=world.a1, contact_id=world.a1_shared.pk)] == [
        "",
        "Hello acme from a1_shared",
    ]
    with pytest.raises(NotFound):
        selectors.contact_mentions(user=world.a1, contact_id=world.b1_shared.pk)


def test_filters_and_keyset_pages(world, heard, django_assert_max_num_queries) -> None:
    seen = []
    cursor = None
    while True:
        with django_assert_max_num_queries(6):
            page = selectors.mention_list(user=world.admin, filters=MentionFilters(), cursor=cursor, limit=2)
        seen.extend(m.pk for m in page.items)
        if page.next is None:
            break
        cursor = page.next
    assert len(seen) == len(set(seen)) == Mention.objects.count() == 7
    unknown = selectors.mention_list(user=world.admin, filters=MentionFilters(contact="unknown")).items
    assert unknown == []
    twitter = selectors.mention_list(user=world.admin, filters=MentionFilters(channel="twitter")).items
    assert [m.snippet for m in twitter] == ["acme tweet by bea"]
    by_contact = MentionFilters(contact=str(world.a1_shared.pk), q="a1_shared")
    assert len(selectors.mention_list(user=world.admin, filters=by_contact).items) == 1
    tomorrow = timezone.localdate() + dt.timedelta(days=1)
    assert selectors.mention_list(user=world.admin, filters=MentionFilters(since=tomorrow)).items == []
    with pytest.raises(DomainError):
        selectors.mention_list(user=world.admin, filters=MentionFilters(), cursor="not-a-cursor")


def test_rule_list_counts_what_the_user_sees(world, heard) -> None:
    assert selectors.rule_list(user=world.a1).get().mention_count_7d == 5
    assert selectors.rule_list(user=world.admin).get().mention_count_7d == 7


def test_volume_is_one_zero_filled_point_per_day_and_the_mix_adds_up(world, heard) -> None:
    volume = selectors.mention_volume(user=world.a1, days=7)
    assert [row["rule_id"] for row in volume] == [heard.pk]
    series = volume[0]["series"]
    assert len(series) == 7 and series[-1] == {"day": timezone.localdate(), "count": 5}
    assert all(point["count"] == 0 for point in series[:-1])
    mix = selectors.sentiment_mix(user=world.a1, days=7)
    assert set(mix) == {"negative", "neutral", "positive"} and sum(mix.values()) == 5
    assert selectors.mention_volume(user=world.b1) == []


def test_who_may_edit_a_rule(world, heard) -> None:
    assert selectors.rule_can_edit(user=world.a1, rule=heard)
    assert not selectors.rule_can_edit(user=world.a2, rule=heard)
    assert selectors.rule_can_edit(user=world.ma, rule=heard)
    assert selectors.rule_can_edit(user=world.admin, rule=heard)
    assert not selectors.rule_can_edit(user=world.b1, rule=heard)


def test_spikes_of_invisible_rules_are_not_listed(world, heard) -> None:
    from listening.models import SpikeAlert

    SpikeAlert.objects.create(rule=heard, window_end=timezone.now(), count=9, mean=1, stddev=1, k=3)
    assert len(selectors.spike_list(user=world.a2)) == 1 and selectors.spike_list(user=world.b1) == []


def test_searching_the_text_finds_no_private_mailbox_message_the_user_may_not_read(world, heard) -> None:
    assert selectors.mention_list(user=world.a1, filters=MentionFilters(q="secret")).items == []
    found = selectors.mention_list(user=world.a2, filters=MentionFilters(q="secret")).items
    assert [m.snippet for m in found] == ["Hello acme secret in a2's mailbox"]
