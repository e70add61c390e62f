"""Rule writes, the per-worker engine cache, the dry run, and evaluation of messages and posts into mentions."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from accounts.models import Visibility
from crm.errors import DomainError, NotFound
from listening import services
from listening.models import ListeningRule, Mention, Post, RuleSetVersion
from listening.services import engine_cache
from listening.services.sharing import NotEditor
from listening.tasks import mentions_evaluate_messages_task
from tests.listening.factories import (
    QUIET,
    email_identity,
    ingest_email,
    ingest_posts,
    make_rule,
    make_source,
    public_post,
)
from tests.threads.factories import ChannelAccountFactory, inbound_email
from threads.connectors import Party
from threads.models import Message
from threads.services.pipeline import ingest_batch

pytestmark = pytest.mark.django_db


def version() -> int:
    row = RuleSetVersion.objects.filter(pk=1).first()
    return row.version if row else 0


@pytest.fixture
def account(world):  # type: ignore[no-untyped-def]
    return ChannelAccountFactory(owner=world.a1, team=world.team_a)


# --- Rule writes ----------------------------------------------------------------------------------------------


def test_rule_writes_bump_the_rule_set_version_in_their_transaction(world) -> None:
    assert version() == 0
    rule = services.rule_create(actor=world.a1, data={"name": "Acme", "query": 'acme OR "acme corp"'})
    assert version() == 1 and rule.owner == world.a1 and rule.team == world.team_a
    services.rule_update(actor=world.a1, rule=rule, data={"query": "acme NEAR/3 cancel*"})
    assert version() == 2 and ListeningRule.objects.get().query == "acme NEAR/3 cancel*"
    services.rule_delete(actor=world.a1, rule=rule)
    assert version() == 3 and not ListeningRule.objects.exists()


def test_a_query_that_does_not_parse_names_its_place_and_changes_nothing(world) -> None:
    with pytest.raises(services.RuleQueryInvalid) as caught:
        services.rule_create(actor=world.a1, data={"name": "Broken", "query": "acme AND (cancel OR"})
    error = caught.value
    assert "query" in error.fields and "at character" in error.fields["query"][0]
    assert error.extra["position"] >= 0 and error.extra["end"] >= error.extra["position"]
    assert not ListeningRule.objects.exists() and version() == 0


def test_other_field_errors_are_reported_together(world) -> None:
    with pytest.raises(DomainError) as caught:
        services.rule_create(
            actor=world.a1,
            data={"name": "", "query": "acme", "alert_cooldown_minutes": -1, "activity_for": "nobody", "spike_k": 0},
        )
    assert {"name", "alert_cooldown_minutes", "activity_for", "spike_k"} <= set(caught.value.fields)


def test_reps_share_only_with_their_own_team_and_admins_with_any(world) -> None:
    with pytest.raises(DomainError) as caught:
        services.rule_create(actor=world.a1, data={"name": "X", "query": "acme", "team": world.team_b})
    assert "team" in caught.value.fields
    private = services.rule_create(actor=world.a1, data={"name": "Mine", "query": "acme", "visibility": "private"})
    assert private.visibility == Visibility.PRIVATE and private.team == world.team_a
    shared = services.rule_create(actor=world.admin, data={"name": "B", "query": "acme", "team": world.team_b.pk})
    assert shared.team == world.team_b


def test_sources_a_rule_reads_must_be_visible_to_its_author(world) -> None:
    theirs = make_source(world.b1)
    with pytest.raises(DomainError) as caught:
        services.rule_create(actor=world.a1, data={"name": "X", "query": "acme", "source_ids": [theirs.pk]})
    assert "sources" in caught.value.fields


def test_only_the_owner_their_manager_or_an_admin_may_change_a_rule(world) -> None:
    rule = make_rule(world.a1)
    with pytest.raises(NotEditor):
        services.rule_update(actor=world.a2, rule=rule, data={"name": "Teammate's edit"})
    with pytest.raises(NotFound):
        services.rule_update(actor=world.b1, rule=rule, data={"name": "Other team"})
    services.rule_update(actor=world.ma, rule=rule, data={"name": "Manager's edit"})
    services.rule_update(actor=world.admin, rule=rule, data={"name": "Admin's edit"})
    assert ListeningRule.objects.get().name == "Admin's edit"


# --- Engine cache ------------------------------------------------------------------------------------------------


def _matches(text: str) -> set[int]:
    from listening.query import Document

    return {m.rule_id for m in services.engine_current().match(Document(text=text, kind="message", channel="email"))}


def test_engine_is_cached_per_process_and_rebuilt_when_another_worker_changes_a_rule(world, monkeypatch) -> None:
    rule = make_rule(world.a1, query="acme")
    clock = [1000.0]
    monkeypatch.setattr(engine_cache.time, "monotonic", lambda: clock[0])
    assert _matches("acme is down") == {rule.pk}
    first = services.engine_current()
    # Another worker edits the rule: the row and the version change, this process's cache is not told.
    ListeningRule.objects.filter(pk=rule.pk).update(query="globex")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE listening_rulesetversion SET version = version + 1, changed_at = now() WHERE id = 1")
    clock[0] += 1.0  # within LISTENING_ENGINE_CHECK_S (2 s): the cached engine, no database round trip
    assert services.engine_current() is first and _matches("acme is down") == {rule.pk}
    clock[0] += 2.5  # past the check interval: the version moved, the engine is rebuilt
    assert _matches("acme is down") == set() and _matches("globex is down") == {rule.pk}
    rebuilt = services.engine_current()
    clock[0] += 5.0  # checked again, version unchanged: the same engine
    assert services.engine_current() is rebuilt


def test_a_rule_written_in_this_process_is_matched_at_once(world) -> None:
    assert _matches("acme") == set()
    rule = services.rule_create(actor=world.a1, data={"name": "Acme", "query": "acme"})
    assert _matches("acme") == {rule.pk}
    services.rule_update(actor=world.a1, rule=rule, data={"active": False})
    assert _matches("acme") == set()


def test_a_catch_all_rule_reads_only_the_sources_its_owner_sees(world) -> None:
    mine, theirs = make_source(world.a1), make_source(world.b1)
    rule = make_rule(world.a1, query="acme")
    spec = next(s for s in services.rule_specs() if s.rule_id == rule.pk)
    assert spec.source_ids == frozenset({mine.pk}) and theirs.pk not in spec.source_ids
    admin_rule = make_rule(world.admin, query="acme")
    assert next(s for s in services.rule_specs() if s.rule_id == admin_rule.pk).source_ids == frozenset()


# --- Dry run -----------------------------------------------------------------------------------------------------


def test_dry_run_shows_hits_with_highlights_and_stores_nothing(world, account) -> None:
    email_identity(world.a1_shared, "ann@example.com")
    ingest_email(account, "ann@example.com", "We may cancel Acme next month, the app is slow.")
    ingest_email(account, "ann@example.com", "Lunch on Friday?")
    result = services.rule_dry_run(actor=world.a1, query="acme NEAR/3 cancel")
    assert result.error is None and result.scanned == 2 and result.matched == 1
    hit = result.hits[0]
    assert hit.kind == "message" and hit.contact_id == world.a1_shared.pk and hit.author == "ann@example.com"
    marked = [hit.snippet[s:e].lower() for s, e in hit.highlights]
    assert "acme" in marked and "cancel" in marked
    assert not Mention.objects.exists() and version() == 0


def test_dry_run_of_a_bad_query_returns_the_error(world) -> None:
    result = services.rule_dry_run(actor=world.a1, query='"unclosed phrase')
    assert result.error is not None and result.hits == [] and result.error.position >= 0


def test_dry_run_scans_only_what_the_actor_may_read(world, account) -> None:
    email_identity(world.b1_shared, "bea@example.com")
    email_identity(world.a1_shared, "ann@example.com")
    ingest_email(account, "bea@example.com", "acme for the other team")
    private_box = ChannelAccountFactory(owner=world.a2, team=world.team_a, visibility=Visibility.PRIVATE)
    ingest_email(private_box, "ann@example.com", "acme in a2's private mailbox")
    source = make_source(world.b1)
    ingest_posts(source, [public_post("acme on b1's private source")])
    assert services.rule_dry_run(actor=world.a1, query="acme").hits == []
    assert {h.snippet for h in services.rule_dry_run(actor=world.a2, query="acme").hits} == {
        "Hello acme in a2's private mailbox"  # the subject, then the body
    }
    # Admins see every contact and source, but a private mailbox's body stays its owner's.
    assert {h.snippet for h in services.rule_dry_run(actor=world.admin, query="acme").hits} == {
        "Hello acme for the other team",
        "acme on b1's private source",
    }


# --- Evaluation ----------------------------------------------------------------------------------------------------


def test_messages_become_mentions_once_with_sentiment_snippet_and_terms(world, account) -> None:
    email_identity(world.a1_shared, "ann@example.com")
    rule = make_rule(world.a1, query="acme AND (cancel OR terrible)", **QUIET)
    message = ingest_email(account, "ann@example.com", "Acme support is terrible, I will cancel.")
    first = services.mentions_evaluate_messages(message_ids=[message.pk])
    again = services.mentions_evaluate_messages(message_ids=[message.pk])
    assert len(first.mentions) == 1 and again.mentions == []
    mention = Mention.objects.get()
    assert (mention.rule, mention.message, mention.contact, mention.channel) == (
        rule,
        message,
        world.a1_shared,
        "email",
    )
    assert mention.sentiment == "negative" and mention.sentiment_score < 0
    assert set(mention.matched_terms) == {"acme", "cancel", "terrible"}
    assert mention.snippet.startswith("Hello") and mention.occurred_at == message.sent_at
    assert {mention.snippet[s:e].lower() for s, e in mention.highlights} == {"acme", "terrible", "cancel"}


def test_our_own_outbound_messages_are_not_listened_to(world, account) -> None:
    make_rule(world.a1, query="acme", **QUIET)
    outbound = inbound_email("ann@example.com", body="acme offer")
    outbound.direction = "outbound"
    with transaction.atomic():
        created = ingest_batch(account=account, messages=[outbound]).created
    assert services.mentions_evaluate_messages(message_ids=created).mentions == []


def test_rules_apply_only_to_their_channels_and_message_setting(world, account) -> None:
    email_identity(world.a1_shared, "ann@example.com")
    make_rule(world.a1, query="acme", channels=["twitter"], **QUIET)
    make_rule(world.a1, query="acme", include_messages=False, **QUIET)
    email_rule = make_rule(world.a1, query="acme", channels=["email"], **QUIET)
    message = ingest_email(account, "ann@example.com", "acme")
    services.mentions_evaluate_messages(message_ids=[message.pk])
    assert list(Mention.objects.values_list("rule_id", flat=True)) == [email_rule.pk]


def test_posts_are_stored_once_resolved_to_contacts_and_evaluated_when_new(world) -> None:
    source = make_source(world.a1)
    rule = make_rule(world.a1, query="acme", **QUIET)
    world.a1_shared.lifecycle_stage = "customer"
    world.a1_shared.save()
    from contacts.models import ContactIdentity

    ContactIdentity.objects.create(contact=world.a1_shared, kind="twitter", value="@ann", normalized="@ann")
    posts = [
        public_post("Acme rocks", external_id="t1", author=Party("twitter", "@ann", "Ann", "from", "ann"), lang="en"),
        public_post("Nothing here", external_id="t2"),
        public_post("acme again", external_id="t3", deleted=True),
    ]
    first = ingest_posts(source, posts)
    assert (first.posts_created, first.posts_duplicate) == (3, 0) and len(first.mentions) == 1
    again = ingest_posts(source, [*posts, public_post("acme deleted later", external_id="t2", deleted=True)])
    assert (again.posts_created, again.posts_duplicate, again.mentions) == (0, 3, [])
    assert again.posts_deleted == 1
    stored = {p.external_id: p for p in Post.objects.all()}
    assert stored["t1"].contact == world.a1_shared and stored["t1"].author_handle == "ann"
    assert stored["t3"].deleted_at is not None and stored["t2"].deleted_at is not None
    mention = Mention.objects.get()
    assert (mention.rule, mention.post, mention.contact, mention.lang) == (rule, stored["t1"], world.a1_shared, "en")


def test_from_customers_sees_the_contact_lifecycle(world) -> None:
    from contacts.models import ContactIdentity

    source = make_source(world.a1)
    rule = make_rule(world.a1, query="acme from:customers", **QUIET)
    ContactIdentity.objects.create(contact=world.a1_shared, kind="twitter", value="@ann", normalized="@ann")
    author = Party("twitter", "@ann", "Ann", "from", "ann")
    ingest_posts(source, [public_post("acme", external_id="x1", author=author)])
    assert not Mention.objects.exists()
    world.a1_shared.lifecycle_stage = "customer"
    world.a1_shared.save()
    ingest_posts(source, [public_post("acme", external_id="x2", author=author)])
    assert Mention.objects.get().rule == rule


def test_messages_ingested_event_enqueues_evaluation_and_the_alert_fires(
    world, account, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    """End to end: threads ingests a message → its event → the task → a mention, an alert, an activity."""
    email_identity(world.a1_shared, "ann@example.com")
    rule = make_rule(world.a2, query="acme NEAR/5 refund", activity_for="contact_owner", tag="refund-risk")
    enqueued: list[list[int]] = []

    def run_now(args: tuple[list[int]], **options: object) -> None:
        enqueued.append(args[0])
        mentions_evaluate_messages_task.apply(args=args)

    monkeypatch.setattr(mentions_evaluate_messages_task, "apply_async", run_now)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        ingest_batch(account=account, messages=[inbound_email("ann@example.com", body="Acme: I want a refund")])
    message = Message.objects.get()
    assert enqueued == [[message.pk]]
    mention = Mention.objects.get()
    assert (mention.rule, mention.message, mention.contact) == (rule, message, world.a1_shared)
    assert world.a2.notifications.filter(message__contains=rule.name).count() == 1
    from activities.models import Activity

    activity = Activity.objects.get()
    assert (activity.owner, activity.contact, activity.subject) == (world.a1, world.a1_shared, rule.name)
    world.a1_shared.refresh_from_db()
    assert world.a1_shared.tags == ["refund-risk"]


def test_the_event_sends_big_batches_in_chunks_of_500(world, monkeypatch, django_capture_on_commit_callbacks) -> None:
    from listening.registrations import on_messages_ingested
    from threads.events import IngestedMessage

    sent: list[list[int]] = []
    monkeypatch.setattr(mentions_evaluate_messages_task, "apply_async", lambda args, **options: sent.append(args[0]))
    messages = [IngestedMessage(i, None, None, "inbound", "email") for i in range(1, 1202)]
    messages.append(IngestedMessage(5000, None, None, "outbound", "email"))
    with django_capture_on_commit_callbacks(execute=True):
        on_messages_ingested(sender=Message, messages=messages)
    assert [len(chunk) for chunk in sent] == [500, 500, 201] and 5000 not in sent[-1]


def test_a_rule_deleted_by_another_worker_meanwhile_is_skipped_not_an_error(world, monkeypatch) -> None:
    source = make_source(world.a1)
    kept = make_rule(world.a1, query="acme", **QUIET)
    gone = make_rule(world.a1, query="acme", **QUIET)
    monkeypatch.setattr(engine_cache.time, "monotonic", lambda: 1000.0)
    services.engine_current()  # compiled with both rules, trusted for the next seconds
    ListeningRule.objects.filter(pk=gone.pk).delete()
    result = ingest_posts(source, [public_post("acme")])
    assert list(Mention.objects.values_list("rule_id", flat=True)) == [kept.pk] and len(result.mentions) == 1


def test_mention_matches_finds_every_occurrence_in_the_full_text(world) -> None:
    source = make_source(world.a1)
    make_rule(world.a1, query="acme", **QUIET)
    ingest_posts(source, [public_post("acme here, " + "filler " * 100 + "and acme there")])
    (match,) = services.mention_matches(Mention.objects.select_related("rule", "post").get())
    assert len(match.spans) == 2


def test_deleting_a_source_deletes_its_posts_and_their_mentions(world) -> None:
    source = services.source_create(actor=world.a1, data={"name": "Hook", "kind": "webhook"})
    make_rule(world.a1, query="acme", **QUIET)
    ingest_posts(source, [public_post("acme")])
    before = version()
    services.source_delete(actor=world.a1, source=source)
    assert not Post.objects.exists() and not Mention.objects.exists() and version() == before + 1


def test_an_editor_may_keep_a_rule_shared_as_it_is(world) -> None:
    rule = make_rule(world.a1, team=world.team_b)  # a1's rule, shared with a team a1's manager is not in
    same = {"name": "Renamed", "visibility": "team", "team": world.team_b}
    assert services.rule_update(actor=world.ma, rule=rule, data=same).name == "Renamed"
    with pytest.raises(DomainError):
        services.rule_update(actor=world.ma, rule=rule, data={"visibility": "private", "team": world.team_b})
