"""Services: reminders, digest, touch prompts and cadence, and calendar invitations.

The beat jobs here (prompt scan, cadence learning, reminders, digest) are set-based: they find their work with
one query each, never by looping over contacts, and a unique constraint is what makes running them twice safe.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
from collections import defaultdict

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.models import Notification, User
from accounts.services import notification_create
from activities.models import Activity, ContactCadence, Kind, TierCadence, TouchPrompt
from contacts.models import Contact
from crm.errors import DomainError

log = logging.getLogger(__name__)

DUE_SOON = dt.timedelta(minutes=30)
# Overdue reminders look back a day only: a long-forgotten backlog is My day's job, not a burst of e-mails.
OVERDUE_LOOKBACK = dt.timedelta(days=1)
DEFAULT_DURATION_MINUTES = 30
MAX_SNOOZE_DAYS = 365

# --- Touch prompts and cadence ------------------------------------------------------------------------------

# One statement: the contacts whose time since the last touch (or, never touched, since they were created) has
# passed their cadence (explicit or learned ContactCadence first, else their tier's) get an open prompt. The
# partial unique index touchprompt_one_live_per_contact makes a second run (or a concurrent one) insert nothing.
# A contact with an open activity is already being worked, and a dismissed prompt stays dismissed until a new
# touch changes last_touch_at.
_PROMPT_SCAN_SQL = """
INSERT INTO activities_touchprompt
    (contact_id, owner_id, cadence_days, cadence_source, last_touch_at, status, snoozed_until, created_at)
SELECT c.id, c.owner_id, COALESCE(cc.days, tc.days), COALESCE(cc.source, 'tier'), c.last_touch_at, 'open', NULL, %(now)s
FROM contacts_contact c
LEFT JOIN activities_contactcadence cc ON cc.contact_id = c.id
LEFT JOIN activities_tiercadence tc ON tc.tier = c.tier
WHERE c.owner_id IS NOT NULL
  AND NOT c.do_not_contact
  AND COALESCE(cc.days, tc.days) IS NOT NULL
  AND COALESCE(c.last_touch_at, c.created_at) < %(now)s - make_interval(days => COALESCE(cc.days, tc.days)::int)
  AND NOT EXISTS (SELECT 1 FROM activities_activity a WHERE a.contact_id = c.id AND a.status = 'open')
  AND NOT EXISTS (
      SELECT 1 FROM activities_touchprompt d
      WHERE d.contact_id = c.id AND d.status = 'dismissed' AND d.last_touch_at IS NOT DISTINCT FROM c.last_touch_at
  )
ON CONFLICT (contact_id) WHERE status IN ('open', 'snoozed') DO NOTHING
"""

_PROMPT_REOPEN_SQL = """
UPDATE activities_touchprompt SET status = 'open', snoozed_until = NULL
WHERE status = 'snoozed' AND snoozed_until <= %(today)s
"""

# Median gap between done activities, per contact, from at least 3 touches (2 gaps). Explicit cadences win: the
# conditional DO UPDATE leaves them alone.
_CADENCE_LEARN_SQL = """
WITH gaps AS (
    SELECT contact_id,
           EXTRACT(EPOCH FROM done_at - LAG(done_at) OVER (PARTITION BY contact_id ORDER BY done_at)) / 86400.0 AS gap
    FROM activities_activity
    WHERE status = 'done' AND done_at IS NOT NULL AND contact_id IS NOT NULL {contact_filter}
), medians AS (
    SELECT contact_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY gap) AS days
    FROM gaps WHERE gap IS NOT NULL
    GROUP BY contact_id HAVING count(*) >= 2
)
INSERT INTO activities_contactcadence (contact_id, days, source, updated_at)
SELECT contact_id, GREATEST(1, round(days))::int, 'learned', %(now)s FROM medians
ON CONFLICT (contact_id) DO UPDATE SET days = EXCLUDED.days, updated_at = EXCLUDED.updated_at
WHERE activities_contactcadence.source = 'learned'
"""


@transaction.atomic
def touch_prompts_scan(*, now: dt.datetime | None = None) -> int:
    """Reopen snoozed prompts whose date has come, then raise prompts for every contact past its cadence.
    Returns how many prompts were created."""
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_PROMPT_REOPEN_SQL, {"today": timezone.localdate(now)})
        cursor.execute(_PROMPT_SCAN_SQL, {"now": now})
        return cursor.rowcount


@transaction.atomic
def cadence_learn(*, contact_ids: list[int] | None = None, now: dt.datetime | None = None) -> int:
    """Learn each contact's cadence from the median gap between its done activities. Returns rows written."""
    params: dict[str, object] = {"now": now or timezone.now()}
    contact_filter = ""
    if contact_ids is not None:
        contact_filter = "AND contact_id = ANY(%(ids)s)"
        params["ids"] = list(contact_ids)
    with connection.cursor() as cursor:
        cursor.execute(_CADENCE_LEARN_SQL.format(contact_filter=contact_filter), params)
        return cursor.rowcount


@transaction.atomic
def contact_cadence_set(*, contact: Contact, days: int, actor: User) -> ContactCadence:
    """Set a contact's cadence by hand; learning never overwrites it."""
    if days < 1 or days > 3650:
        raise DomainError("A cadence is between 1 and 3650 days.", fields={"days": ["Between 1 and 3650."]})
    cadence, _ = ContactCadence.objects.update_or_create(
        contact=contact, defaults={"days": days, "source": ContactCadence.Source.EXPLICIT, "updated_at": timezone.now()}
    )
    return cadence


@transaction.atomic
def contact_cadence_clear(*, contact: Contact, actor: User) -> None:
    """Drop the contact's cadence: the tier's applies again (until learning finds one)."""
    ContactCadence.objects.filter(contact=contact).delete()


def _require_admin(actor: User) -> None:
    if not actor.is_admin_role:
        raise DomainError("Only admins set tier cadences.", code="permission_denied")


@transaction.atomic
def tier_cadence_set(*, tier: str, days: int, actor: User) -> TierCadence:
    """Set the default cadence of a tier ("" is the blank tier)."""
    _require_admin(actor)
    if tier not in {"", *Contact.Tier.values}:
        raise DomainError(f"Unknown tier “{tier}”.", fields={"tier": ["Unknown tier."]})
    if days < 1 or days > 3650:
        raise DomainError("A cadence is between 1 and 3650 days.", fields={"days": ["Between 1 and 3650."]})
    cadence, _ = TierCadence.objects.update_or_create(tier=tier, defaults={"days": days})
    return cadence


@transaction.atomic
def tier_cadence_delete(*, cadence: TierCadence, actor: User) -> None:
    _require_admin(actor)
    cadence.delete()


def _require_live(prompt: TouchPrompt) -> None:
    if prompt.status not in (TouchPrompt.Status.OPEN, TouchPrompt.Status.SNOOZED):
        raise DomainError("This prompt has already been handled.", code="conflict")


def _due_today(now: dt.datetime) -> dt.datetime:
    """Late afternoon today, or soon if that has passed: a one-click call is due today, never already overdue."""
    local = timezone.localtime(now)
    candidate = local.replace(hour=17, minute=0, second=0, microsecond=0)
    if candidate <= local:
        end = local.replace(hour=23, minute=59, second=0, microsecond=0)
        candidate = min(local + dt.timedelta(hours=1), end)
    return candidate


@transaction.atomic
def touch_prompt_to_activity(*, prompt: TouchPrompt, actor: User) -> Activity:
    """One click: a call with the contact, due today, assigned to the prompt's owner; the prompt is done."""
    from activities.services import activity_create

    prompt = TouchPrompt.objects.select_for_update().select_related("contact", "owner").get(pk=prompt.pk)
    _require_live(prompt)
    contact = prompt.contact
    activity = activity_create(
        actor=actor,
        owner=prompt.owner,
        subject=f"Get in touch with {contact}",
        kind=Kind.CALL,
        contact=contact,
        due_at=_due_today(timezone.now()),
        notes=f"Touch prompt: {prompt.reason}.",
    )
    prompt.status = TouchPrompt.Status.DONE
    prompt.activity = activity
    prompt.snoozed_until = None
    prompt.save(update_fields=["status", "activity", "snoozed_until"])
    return activity


@transaction.atomic
def touch_prompt_snooze(*, prompt: TouchPrompt, actor: User, days: int) -> TouchPrompt:
    """Hide the prompt for ``days`` days; the scan reopens it when the date comes."""
    if not isinstance(days, int) or days < 1 or days > MAX_SNOOZE_DAYS:
        raise DomainError(
            f"Snooze for 1 to {MAX_SNOOZE_DAYS} days.", fields={"days": [f"Between 1 and {MAX_SNOOZE_DAYS}."]}
        )
    prompt = TouchPrompt.objects.select_for_update().get(pk=prompt.pk)
    _require_live(prompt)
    prompt.status = TouchPrompt.Status.SNOOZED
    prompt.snoozed_until = timezone.localdate() + dt.timedelta(days=days)
    prompt.save(update_fields=["status", "snoozed_until"])
    return prompt


@transaction.atomic
def touch_prompt_dismiss(*, prompt: TouchPrompt, actor: User) -> TouchPrompt:
    """Dismiss the prompt; it comes back only after the next touch, once the cadence passes again."""
    prompt = TouchPrompt.objects.select_for_update().get(pk=prompt.pk)
    _require_live(prompt)
    prompt.status = TouchPrompt.Status.DISMISSED
    prompt.save(update_fields=["status"])
    return prompt


# --- Reminders and digest -----------------------------------------------------------------------------------


def _site_url(path: str) -> str:
    base = getattr(settings, "SITE_URL", "") or ""
    return f"{base.rstrip('/')}{path}"


def _send(*, user: User, subject: str, template: str, context: dict[str, object]) -> None:
    if not user.email:
        return
    text = render_to_string(f"activities/email/{template}.txt", context)
    html = render_to_string(f"activities/email/{template}.html", context)
    message = EmailMultiAlternatives(subject=subject, body=text, to=[user.email])
    message.attach_alternative(html, "text/html")
    message.send()


def reminders_send(*, now: dt.datetime | None = None) -> int:
    """Notify owners of open activities due within 30 minutes, or overdue since the last day. Returns how many
    notifications were created; the dedupe key (activity, kind, due time) makes re-runs create none, and a
    rescheduled activity (new due time) is reminded again."""
    now = now or timezone.now()
    candidates = (
        Activity.objects.filter(
            status=Activity.Status.OPEN,
            owner__isnull=False,
            owner__is_active=True,
            due_at__gte=now - OVERDUE_LOOKBACK,
            due_at__lte=now + DUE_SOON,
        )
        .select_related("owner", "contact")
        .order_by("due_at", "id")
    )
    created = 0
    for activity in candidates:
        assert activity.due_at is not None and activity.owner is not None
        kind = "due_soon" if activity.due_at >= now else "overdue"
        when = timezone.localtime(activity.due_at).strftime("%H:%M")
        message = f"Due at {when}: {activity.subject}" if kind == "due_soon" else f"Overdue: {activity.subject}"
        notification = notification_create(
            user=activity.owner,
            message=message,
            level=Notification.Level.INFO if kind == "due_soon" else Notification.Level.WARNING,
            url=reverse("activities:calendar"),
            dedupe_key=f"activity:{activity.pk}:{kind}:{activity.due_at.isoformat()}",
        )
        if notification is None:
            continue
        created += 1
        if activity.owner.notify_by_email:
            _send(
                user=activity.owner,
                subject=message,
                template="reminder",
                context={"activity": activity, "kind": kind, "when": when, "url": _site_url(notification.url)},
            )
    return created


def digest_send(*, today: dt.date | None = None) -> int:
    """One morning e-mail per user with daily_digest: today's and overdue activities and open prompts. The
    Notification with dedupe key ``digest:<date>`` is claimed first, so a re-run sends nothing twice. Returns the
    number of digests sent."""
    today = today or timezone.localdate()
    tz = timezone.get_current_timezone()
    end = dt.datetime.combine(today + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    users = {u.pk: u for u in User.objects.filter(is_active=True, daily_digest=True).exclude(email="")}
    if not users:
        return 0
    activities: dict[int, list[Activity]] = defaultdict(list)
    for activity in (
        Activity.objects.filter(status=Activity.Status.OPEN, owner_id__in=list(users), due_at__lt=end)
        .select_related("contact")
        .order_by("due_at", "id")
    ):
        activities[activity.owner_id].append(activity)  # type: ignore[index]
    prompts: dict[int, list[TouchPrompt]] = defaultdict(list)
    for prompt in TouchPrompt.objects.filter(owner_id__in=list(users), status=TouchPrompt.Status.OPEN).select_related(
        "contact"
    ):
        prompts[prompt.owner_id].append(prompt)
    start = dt.datetime.combine(today, dt.time.min, tzinfo=tz)
    sent = 0
    failed: list[str] = []
    for pk, user in users.items():
        mine, my_prompts = activities.get(pk, []), prompts.get(pk, [])
        if not mine and not my_prompts:
            continue
        overdue = [a for a in mine if a.due_at is not None and a.due_at < start]
        due_today = [a for a in mine if a.due_at is not None and a.due_at >= start]
        try:
            # The claim and the e-mail are one unit: if the mail server refuses, the claim is rolled back and the
            # next run (the task retries) sends that user's digest; if it was sent, no re-run sends it again.
            with transaction.atomic():
                notification = notification_create(
                    user=user,
                    message=(
                        f"Your day: {len(due_today)} due today, {len(overdue)} overdue, "
                        f"{len(my_prompts)} to get in touch"
                    ),
                    url="/",
                    dedupe_key=f"digest:{today.isoformat()}",
                )
                if notification is None:
                    continue
                _send(
                    user=user,
                    subject=f"Your day, {today:%A %d %B}",
                    template="digest",
                    context={
                        "user": user,
                        "today": today,
                        "due_today": due_today,
                        "overdue": overdue,
                        "prompts": my_prompts,
                        "url": _site_url("/"),
                    },
                )
        except (OSError, smtplib.SMTPException) as exc:
            failed.append(f"{user}: {exc}")
            log.warning("digest for %s not sent (will retry): %s", user, exc)
            continue
        sent += 1
    if failed:
        raise DigestNotSent(sent=sent, failed=failed)
    return sent


class DigestNotSent(Exception):
    """Some digests could not be sent (the others were): the task retries, and only the missing ones go out."""

    def __init__(self, *, sent: int, failed: list[str]) -> None:
        super().__init__(f"{len(failed)} digest(s) not sent ({sent} sent): {'; '.join(failed)[:1000]}")
        self.sent = sent
        self.failed = failed


# --- Calendar invitations -----------------------------------------------------------------------------------


def activity_end(activity: Activity) -> dt.datetime:
    assert activity.due_at is not None
    return activity.due_at + dt.timedelta(minutes=activity.duration_minutes or DEFAULT_DURATION_MINUTES)


def meeting_invitation_ics(*, activity: Activity) -> bytes:
    """A METHOD:REQUEST calendar with the meeting as one event, organised by its owner."""
    from icalendar import Calendar, Event, vCalAddress, vText

    if activity.due_at is None:
        raise DomainError("Give the meeting a date and time before sending an invitation.")
    cal = Calendar()
    cal.add("prodid", "-//Threadline//Activities//EN")
    cal.add("version", "2.0")
    cal.add("method", "REQUEST")
    event = Event()
    event.add("uid", f"activity-{activity.pk}@threadline")
    event.add("dtstamp", timezone.now())
    event.add("dtstart", activity.due_at)
    event.add("dtend", activity_end(activity))
    event.add("summary", activity.subject)
    if activity.notes:
        event.add("description", activity.notes)
    if activity.location:
        event.add("location", activity.location)
    event.add("sequence", int(activity.updated_at.timestamp()) % 2_000_000_000 if activity.updated_at else 0)
    owner = activity.owner
    if owner is not None and owner.email:
        organizer = vCalAddress(f"mailto:{owner.email}")
        organizer.params["cn"] = vText(owner.get_full_name() or owner.get_username())
        event.add("organizer", organizer)
    contact = activity.contact
    if contact is not None:
        for email in contact.identities.filter(kind="email").values_list("normalized", flat=True):
            attendee = vCalAddress(f"mailto:{email}")
            attendee.params["cn"] = vText(str(contact))
            attendee.params["role"] = vText("REQ-PARTICIPANT")
            attendee.params["rsvp"] = vText("TRUE")
            event.add("attendee", attendee, encode=0)
    cal.add_component(event)
    return cal.to_ical()


def meeting_invitation_email(*, activity: Activity, to: list[str]) -> EmailMultiAlternatives:
    """The invitation e-mail with the .ics attached as text/calendar (calendar clients show Accept/Decline)."""
    if not to:
        raise DomainError("Nobody to invite: the contact has no e-mail address.", fields={"to": ["Required."]})
    ics = meeting_invitation_ics(activity=activity)
    when = timezone.localtime(activity.due_at).strftime("%A %d %B %Y, %H:%M") if activity.due_at else ""
    body = f"Invitation: {activity.subject}\nWhen: {when}\n"
    if activity.location:
        body += f"Where: {activity.location}\n"
    from_email = activity.owner.email if activity.owner and activity.owner.email else None
    message = EmailMultiAlternatives(subject=f"Invitation: {activity.subject}", body=body, to=to, from_email=from_email)
    message.attach("invite.ics", ics, "text/calendar; method=REQUEST; charset=UTF-8")
    return message


def meeting_invitation_send(*, activity: Activity, actor: User) -> int:
    """Send the invitation to the meeting's contact. Returns the number of recipients."""
    if activity.kind not in (Kind.MEETING, Kind.APPOINTMENT):
        raise DomainError("Only meetings and appointments can be sent as invitations.")
    if activity.contact is None:
        raise DomainError("This meeting has no contact to invite.")
    to = list(activity.contact.identities.filter(kind="email").values_list("normalized", flat=True))
    message = meeting_invitation_email(activity=activity, to=to)
    message.send()
    return len(to)
