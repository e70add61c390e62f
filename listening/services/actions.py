"""What a rule does when it matches: an in-app alert, an activity, a tag on the contact (and, daily, an e-mail digest).

Cooldowns are claimed atomically in ``RuleActionState`` by one statement for the whole batch::

    INSERT … ON CONFLICT (rule, action, scope) DO UPDATE SET last_fired_at = EXCLUDED.last_fired_at
    WHERE state.last_fired_at <= now - cooldown RETURNING …

Only the rows it returns fire, so two workers matching the same rule at once fire once, and a match inside the
cooldown fires nothing. The claim is in the same transaction as the mentions: a failed batch releases it.

Who hears about it:

- **In-app alert** (``alert_in_app``, cooldown ``alert_cooldown_minutes`` per rule, 0 = every batch): the rule's
  owner. Should the owner be gone (deactivated or removed), the managers of the rule's team get it instead, so a
  team rule keeps its alerts. The alert names the rule and the count, never the text: the mentions page applies
  visibility to what it shows.
- **Activity** (``activity_for``, cooldown ``activity_cooldown_minutes`` per contact): assigned to the contact's
  owner (or, without one, the rule's owner) or to the rule's owner, due now, with the snippet in its notes unless
  the text came from a private mailbox.
- **Tag** (``tag``): appended to the contact's tags when absent (idempotent, so no cooldown).

Actions that touch a contact (activity, tag) apply only to contacts the rule's owner may see: a rule is no side
door into another team's records.

Adding the author to a campaign arrives with the campaigns app, which will plug a further action in here.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass, field

from django.db import connection
from django.urls import reverse

from accounts.models import Membership, Notification, User
from accounts.selectors import visible
from accounts.services import notification_create
from activities.services import activity_create
from contacts.models import Contact
from crm.errors import DomainError
from listening.models import ListeningRule

log = logging.getLogger(__name__)

ALERT, ACTIVITY = "alert", "activity"


@dataclass
class NewMention:
    """A mention this transaction inserted, with what the actions need of it."""

    id: int
    rule_id: int
    contact_id: int | None
    channel: str
    occurred_at: dt.datetime
    snippet: str = ""
    private: bool = False  # from a private mailbox: its text stays out of activities


@dataclass
class ActionOutcome:
    alerts: int = 0
    activities: int = 0
    tagged: int = 0
    skipped: list[str] = field(default_factory=list)


# The cooldown of each claim comes from its rule, read inside the statement: the rule's current value decides.
_CLAIM_SQL = """
INSERT INTO listening_ruleactionstate AS s (rule_id, action, scope, last_fired_at)
SELECT c.rule_id, c.action, c.scope, %s
FROM unnest(%s::bigint[], %s::varchar[], %s::varchar[]) AS c(rule_id, action, scope)
ON CONFLICT (rule_id, action, scope) DO UPDATE SET last_fired_at = EXCLUDED.last_fired_at
WHERE s.last_fired_at <= EXCLUDED.last_fired_at - make_interval(mins => (
    SELECT CASE WHEN EXCLUDED.action = 'alert' THEN r.alert_cooldown_minutes ELSE r.activity_cooldown_minutes END
    FROM listening_listeningrule r WHERE r.id = EXCLUDED.rule_id))
RETURNING s.rule_id, s.action, s.scope
"""


def cooldowns_claim(claims: list[tuple[int, str, str]], now: dt.datetime) -> set[tuple[int, str, str]]:
    """Claim each (rule, action, scope) whose cooldown has passed; return those claimed. Sorted, so concurrent
    batches lock the state rows in the same order and wait for each other instead of deadlocking."""
    claims = sorted(set(claims))
    if not claims:
        return set()
    rule_ids, actions, scopes = (list(col) for col in zip(*claims, strict=True))
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, [now, rule_ids, actions, scopes])
        return {(r, a, s) for r, a, s in cursor.fetchall()}


def rule_recipients(rule: ListeningRule, *, with_team_managers: bool = False) -> list[User]:
    """The rule's owner when active (plus, with ``with_team_managers``, the managers of a team-shared rule's
    team); the team's managers when the owner is gone."""
    people: dict[int, User] = {}
    owner = rule.owner
    if owner is not None and owner.is_active:
        people[owner.pk] = owner
    if rule.team_id and (not people or (with_team_managers and rule.visibility == "team")):
        managers = User.objects.filter(
            is_active=True, pk__in=Membership.objects.filter(team_id=rule.team_id, is_manager=True).values("user_id")
        )
        for manager in managers:
            people.setdefault(manager.pk, manager)
    return list(people.values())


def mentions_url(rule_id: int) -> str:
    return f"{reverse('listening:mentions')}?rule={rule_id}"


def _alert(rule: ListeningRule, mentions: list[NewMention]) -> int:
    count = len(mentions)
    channels = sorted({m.channel for m in mentions})
    text = f"Listening: “{rule.name}” matched {count} new mention{'s' if count != 1 else ''}"
    if channels:
        text += f" ({', '.join(channels[:4])}{' …' if len(channels) > 4 else ''})"
    key = f"listening-alert:{rule.pk}:{min(m.id for m in mentions)}"
    sent = 0
    for user in rule_recipients(rule):
        if notification_create(
            user=user, message=text, level=Notification.Level.ALERT, url=mentions_url(rule.pk), dedupe_key=key
        ):
            sent += 1
    return sent


def _visible_contacts(rules: list[ListeningRule], contact_ids: set[int]) -> dict[int | None, set[int]]:
    """Per rule owner, which of ``contact_ids`` they may see (one query per distinct owner; admins see all)."""
    result: dict[int | None, set[int]] = {}
    for rule in rules:
        owner = rule.owner
        key = owner.pk if owner is not None else None
        if key in result:
            continue
        if owner is None or owner.is_admin_role:
            result[key] = set(contact_ids)
            continue
        # A deactivated owner's rule still acts on the contacts the owner could see (see engine_cache): asked on
        # a copy, so the activity service still refuses to assign work to the deactivated user.
        viewer = copy.copy(owner)
        viewer.is_active = True
        result[key] = set(visible(Contact.objects.filter(pk__in=contact_ids), viewer).values_list("pk", flat=True))
    return result


def _activity(rule: ListeningRule, contact: Contact, mention: NewMention, now: dt.datetime) -> bool:
    if rule.activity_for == ListeningRule.ActivityFor.CONTACT_OWNER:
        assignee = contact.owner if contact.owner is not None and contact.owner.is_active else rule.owner
    else:
        assignee = rule.owner
    if assignee is None:
        return False
    notes = f"“{rule.name}” matched a {mention.channel} mention on {mention.occurred_at:%Y-%m-%d %H:%M} UTC."
    if mention.snippet and not mention.private:
        notes += f"\n\n{mention.snippet}"
    try:
        activity_create(
            actor=rule.owner if rule.owner is not None else assignee, owner=assignee, contact=contact,
            subject=(rule.activity_title or rule.name)[:300], kind=rule.activity_kind, due_at=now,
            notes=notes,
        )  # fmt: skip
    except DomainError as exc:
        # The assignee cannot see the contact or was deactivated: no activity nobody can open.
        log.info("listening rule %s: no activity for contact %s: %s", rule.pk, contact.pk, exc.message)
        return False
    return True


def _tag(tag: str, contact_ids: set[int], now: dt.datetime) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE contacts_contact SET tags = array_append(tags, %s::varchar), updated_at = %s "
            "WHERE id = ANY(%s) AND NOT (%s::varchar = ANY(tags))",
            [tag, now, sorted(contact_ids), tag],
        )
        return cursor.rowcount


def actions_run(*, mentions: list[NewMention], now: dt.datetime) -> ActionOutcome:
    """Run the actions of every rule that has new mentions in ``mentions`` (all inserted by this transaction)."""
    outcome = ActionOutcome()
    by_rule: dict[int, list[NewMention]] = defaultdict(list)
    for mention in mentions:
        by_rule[mention.rule_id].append(mention)
    rules = {
        r.pk: r
        for r in ListeningRule.objects.filter(pk__in=list(by_rule)).select_related("owner").only(
            "id", "name", "owner", "team", "visibility", "alert_in_app", "activity_for", "activity_kind",
            "activity_title", "tag",
        )
    }  # fmt: skip
    contact_rules = [r for r in rules.values() if r.activity_for or r.tag]
    seen_by: dict[int | None, set[int]] = {}
    if contact_rules:
        contact_ids = {m.contact_id for r in contact_rules for m in by_rule[r.pk] if m.contact_id}
        if contact_ids:
            seen_by = _visible_contacts(contact_rules, contact_ids)

    def contacts_of(rule: ListeningRule) -> dict[int, NewMention]:
        allowed = seen_by.get(rule.owner_id, set())
        first: dict[int, NewMention] = {}
        for m in by_rule[rule.pk]:
            if m.contact_id and m.contact_id in allowed:
                first.setdefault(m.contact_id, m)
        return first

    claims: list[tuple[int, str, str]] = []
    for rule in rules.values():
        if rule.alert_in_app:
            claims.append((rule.pk, ALERT, ""))
        if rule.activity_for:
            claims.extend((rule.pk, ACTIVITY, f"contact:{cid}") for cid in contacts_of(rule))
    claimed = cooldowns_claim(claims, now)
    for rule_id, action, _scope in sorted(claimed):
        if action == ALERT:
            outcome.alerts += _alert(rules[rule_id], by_rule[rule_id])
    activity_claims = [(r, int(s.split(":", 1)[1])) for r, a, s in sorted(claimed) if a == ACTIVITY]
    if activity_claims:
        contacts = Contact.objects.select_related("owner", "company").in_bulk([cid for _, cid in activity_claims])
        for rule_id, contact_id in activity_claims:
            rule, contact = rules[rule_id], contacts.get(contact_id)
            if contact is not None and _activity(rule, contact, contacts_of(rule)[contact_id], now):
                outcome.activities += 1
    tags: dict[str, set[int]] = defaultdict(set)
    for rule in rules.values():
        if rule.tag:
            tags[rule.tag].update(contacts_of(rule))
    for tag, contact_ids in sorted(tags.items()):
        if contact_ids:
            outcome.tagged += _tag(tag, contact_ids, now)
    return outcome
