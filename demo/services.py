"""Realistic, deterministic demo data. Running it twice changes nothing the second time.

Everything is generated from a fixed random seed, and each row has a natural key that is looked up before it is
created (team and user names, company names, each contact's primary e-mail), so a rerun only fills what is
missing. Later apps (threads, activities, deals ...) add their own demo rows here, keyed on these contacts.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from simple_history.utils import bulk_create_with_history

from accounts.models import Membership, Team, User, Visibility
from accounts.services import membership_set, team_create, user_create
from activities.models import Activity
from contacts.models import Company, Contact, ContactIdentity
from contacts.services import company_search_refresh, contact_search_refresh
from threads.connectors import NormalizedMessage, Party
from threads.models import ChannelAccount, Message
from threads.services.pipeline import ingest_batch

SEED = 20261124
DEMO_PASSWORD_DEFAULT = "threadline-demo"  # noqa: S105  (documented in the README; demo data only)

TEAMS = [
    ("Enterprise East", "Strategic accounts east of the Mississippi."),
    ("Enterprise West", "Strategic accounts in the west and APAC."),
    ("SMB", "Small and mid-sized businesses, inbound-led."),
]
# (username, first, last, role, team index, manages team)
USERS = [
    ("olivia", "Olivia", "Hart", User.Role.MANAGER, 0, True),
    ("marcus", "Marcus", "Reed", User.Role.REP, 0, False),
    ("priya", "Priya", "Natarajan", User.Role.REP, 0, False),
    ("diego", "Diego", "Alvarez", User.Role.MANAGER, 1, True),
    ("hana", "Hana", "Sato", User.Role.REP, 1, False),
    ("lukas", "Lukas", "Becker", User.Role.REP, 1, False),
    ("grace", "Grace", "Okafor", User.Role.MANAGER, 2, True),
    ("tom", "Tom", "Lindqvist", User.Role.REP, 2, False),
    ("amira", "Amira", "Haddad", User.Role.REP, 2, False),
    ("sam", "Sam", "Whitfield", User.Role.ADMIN, 0, False),
]

FIRST = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Christopher",
    "Lisa",
    "Daniel",
    "Nancy",
    "Matthew",
    "Betty",
    "Anthony",
    "Sandra",
    "Mark",
    "Ashley",
    "Wei",
    "Fatima",
    "Kenji",
    "Ingrid",
    "Mateo",
    "Aisha",
    "Lars",
    "Chiara",
    "Raj",
    "Sofia",
    "Yusuf",
    "Elena",
    "Noah",
    "Zoe",
    "Omar",
    "Freya",
    "Ravi",
    "Leila",
]
LAST = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Chen",
    "Kowalski",
]
COMPANY_A = [
    "Acme",
    "Apex",
    "Blue",
    "Bright",
    "Cedar",
    "Crown",
    "Delta",
    "Echo",
    "Evergreen",
    "Falcon",
    "Granite",
    "Harbor",
    "Iron",
    "Juniper",
    "Keystone",
]
COMPANY_B = [
    "Analytics",
    "Logistics",
    "Foods",
    "Health",
    "Robotics",
    "Energy",
    "Media",
    "Labs",
    "Systems",
    "Partners",
    "Textiles",
    "Outdoor",
]
SUFFIX = ["Inc", "LLC", "Group", "Co", "GmbH", "Ltd"]
INDUSTRIES = ["Software", "Manufacturing", "Retail", "Healthcare", "Logistics", "Finance", "Media", "Energy"]
SIZES = ["1-10", "11-50", "51-200", "201-1000", "1000+"]
TITLES = [
    "CEO", "CTO", "VP Sales", "Head of Marketing", "Procurement Manager", "Operations Director", "IT Manager",
    "Office Manager", "Founder", "Product Manager", "CFO", "Customer Success Lead",
]  # fmt: skip
CITIES = [
    ("Boston", "MA", "US", "America/New_York"), ("Chicago", "IL", "US", "America/Chicago"),
    ("Austin", "TX", "US", "America/Chicago"), ("Seattle", "WA", "US", "America/Los_Angeles"),
    ("Denver", "CO", "US", "America/Denver"), ("London", "", "GB", "Europe/London"),
    ("Berlin", "", "DE", "Europe/Berlin"), ("Toronto", "ON", "CA", "America/Toronto"),
    ("Sydney", "NSW", "AU", "Australia/Sydney"), ("Tokyo", "", "JP", "Asia/Tokyo"),
]  # fmt: skip
TAGS = ["newsletter", "webinar-2026", "vip", "partner", "trade-show", "referral", "churn-risk", "golf"]


@dataclass
class SeedReport:
    teams: int = 0
    users: int = 0
    companies: int = 0
    contacts: int = 0
    identities: int = 0
    messages: int = 0
    activities: int = 0

    def __str__(self) -> str:
        return (
            f"created {self.teams} teams, {self.users} users, {self.companies} companies, "
            f"{self.contacts} contacts, {self.identities} identities, {self.messages} messages, "
            f"{self.activities} activities"
        )


def _seed_people(report: SeedReport) -> tuple[list[Team], list[User]]:
    password = os.environ.get("DEMO_PASSWORD", DEMO_PASSWORD_DEFAULT)
    teams = []
    for name, description in TEAMS:
        team = Team.objects.filter(name=name).first()
        if team is None:
            team = team_create(name=name, description=description)
            report.teams += 1
        teams.append(team)
    users = []
    for username, first, last, role, team_index, manages in USERS:
        user = User.objects.filter(username=username).first()
        if user is None:
            user = user_create(
                username=username, email=f"{username}@threadline.example", password=password, role=role,
                first_name=first, last_name=last,
            )  # fmt: skip
            report.users += 1
        if not Membership.objects.filter(user=user, team=teams[team_index]).exists():
            membership_set(user=user, team=teams[team_index], is_manager=manages)
        users.append(user)
    return teams, users


def _seed_companies(
    rng: random.Random, reps: list[User], team_of: dict[int, Team], report: SeedReport
) -> list[Company]:
    wanted: dict[str, Company] = {}
    while len(wanted) < 200:
        name = f"{rng.choice(COMPANY_A)} {rng.choice(COMPANY_B)} {rng.choice(SUFFIX)}"
        if name in wanted:
            continue
        slug = name.lower().replace(" ", "-")
        owner = rng.choice(reps)
        city, region, country, _tz = rng.choice(CITIES)
        wanted[name] = Company(
            name=name, domains=[f"{slug}.example"], industry=rng.choice(INDUSTRIES),
            size=rng.choice(SIZES), website=f"https://www.{slug}.example", city=city, region=region,
            country=country, owner=owner, team=team_of[owner.pk], visibility=Visibility.TEAM,
        )  # fmt: skip
    existing = {c.name: c for c in Company.objects.filter(name__in=list(wanted))}
    missing = [c for c in wanted.values() if c.name not in existing]
    if missing:
        created = bulk_create_with_history(missing, Company, batch_size=500)
        company_search_refresh(company_ids=[c.pk for c in created])
        report.companies += len(created)
        for company in created:
            existing[company.name] = company
    return [existing[c.name] for c in wanted.values()]


def _seed_contacts(
    rng: random.Random, companies: list[Company], reps: list[User], team_of: dict[int, Team], report: SeedReport
) -> None:
    now = timezone.now()
    planned: list[tuple[Contact, list[ContactIdentity]]] = []
    for index in range(2000):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        company = rng.choice(companies)
        # Mostly the company's owner team; a share is owned across teams, like real books of business.
        owner = company.owner if rng.random() < 0.8 else rng.choice(reps)
        city, region, country, tz = rng.choice(CITIES)
        contact = Contact(
            first_name=first, last_name=last, title=rng.choice(TITLES), company=company,
            lifecycle_stage=rng.choices(list(Contact.Stage.values), weights=[4, 3, 5, 1])[0],
            tier=rng.choice(["A", "B", "B", "C", "C", ""]), tags=rng.sample(TAGS, k=rng.randint(0, 2)),
            city=city, region=region, country=country, time_zone=tz, language=rng.choice(["en", "en", "de", "es"]),
            owner=owner, team=team_of[owner.pk],
            visibility=Visibility.PRIVATE if rng.random() < 0.1 else Visibility.TEAM,
            last_touch_at=now - timedelta(days=rng.randint(0, 180), hours=rng.randint(0, 23)),
        )  # fmt: skip
        email = f"{first}.{last}.{index}@{company.domains[0]}".lower()
        identities = [ContactIdentity(kind="email", value=email, normalized=email, is_primary=True, source="demo")]
        if rng.random() < 0.6:
            number = f"+1617555{index:04d}"
            identities.append(ContactIdentity(kind="phone", value=number, normalized=number, source="demo"))
        if rng.random() < 0.3:
            handle = f"{first}{last}{index}"
            identities.append(
                ContactIdentity(
                    kind="twitter", value="@" + handle, normalized="@" + handle.lower(), handle=handle, source="demo"
                )
            )
        planned.append((contact, identities))
    emails = [identities[0].normalized for _, identities in planned]
    existing = set(
        ContactIdentity.objects.filter(kind="email", normalized__in=emails).values_list("normalized", flat=True)
    )
    missing = [(c, ids) for c, ids in planned if ids[0].normalized not in existing]
    if not missing:
        return
    contacts = bulk_create_with_history([c for c, _ in missing], Contact, batch_size=500)
    identities = []
    for contact, (_, planned_ids) in zip(contacts, missing, strict=True):
        for identity in planned_ids:
            identity.contact = contact
            identities.append(identity)
    # A phone or handle of a half-finished earlier run may exist already; the unique constraint decides.
    ContactIdentity.objects.bulk_create(identities, batch_size=1000, ignore_conflicts=True)
    contact_search_refresh(contact_ids=[c.pk for c in contacts])
    report.contacts += len(contacts)
    report.identities += len(identities)


@transaction.atomic
def demo_seed() -> SeedReport:
    """Create the demo teams, users, companies and contacts that are not there yet."""
    report = SeedReport()
    rng = random.Random(SEED)
    teams, users = _seed_people(report)
    team_of = {u.pk: teams[spec[4]] for u, spec in zip(users, USERS, strict=True)}
    reps = [u for u in users if u.role == User.Role.REP]
    companies = _seed_companies(rng, reps, team_of, report)
    _seed_contacts(rng, companies, reps, team_of, report)
    _seed_conversations(rng, reps, team_of, report)
    _seed_social(rng, reps, team_of, report)
    _seed_activities(rng, reps, report)
    return report


CONVERSATIONS = [
    ("Pricing for the Pro plan", "Hi, could you send me pricing for the Pro plan for 40 seats?",
     "Happy to. For 40 seats the Pro plan comes to $1,480 a month; I attached the details."),
    ("Renewal next quarter", "Our renewal is coming up in March. Can we talk about the terms?",
     "Of course. How does Thursday at 10 look for a call?"),
    ("Problem with the export", "The CSV export has been failing since yesterday, it times out.",
     "Sorry about that. Our team is on it; I will update you by end of day."),
    ("Introduction", "Great meeting you at the conference. Let's stay in touch!",
     "Likewise! I will send over the case study we discussed."),
    ("Onboarding session", "Can we schedule the onboarding session for the new team members?",
     "Sure, I have sent an invitation for next Tuesday."),
]  # fmt: skip


def _seed_conversations(rng: random.Random, reps: list[User], team_of: dict[int, Team], report: SeedReport) -> None:
    """A shared demo mailbox (paused: it has no server until someone connects one) and a few conversations per
    contact for the first contacts of each rep, through the same ingest pipeline real mail takes."""
    if Message.objects.filter(global_key__startswith="email:demo-").exists():
        return
    owner = reps[0]
    account, _ = ChannelAccount.objects.get_or_create(
        name="Sales shared mailbox (demo)", kind=ChannelAccount.Kind.EMAIL,
        defaults={"address": "sales@threadline-demo.example", "owner": owner, "team": team_of[owner.pk],
                  "status": ChannelAccount.Status.PAUSED,
                  "last_error": "Demo account: enter your IMAP/SMTP server and credentials, then resume."},
    )  # fmt: skip
    now = timezone.now()
    messages = []
    for rep in reps:
        contacts = Contact.objects.filter(owner=rep).order_by("pk")[:12]
        for contact in contacts:
            identity = contact.identities.filter(kind="email").first()
            if identity is None:
                continue
            them = Party("email", identity.normalized, contact.display_name, "from")
            for n in range(rng.randint(1, 2)):
                subject, question, answer = rng.choice(CONVERSATIONS)
                root = f"demo-{contact.pk}-{n}@threadline-demo.example"
                asked = now - timedelta(days=rng.randint(1, 60), minutes=rng.randint(0, 600))
                messages.append(
                    NormalizedMessage(
                        channel="email", direction="inbound", external_id=root, sent_at=asked,
                        provider_thread_key=root, author=them, counterparts=[them], subject=subject,
                        body_text=question, body_display=question,
                    )
                )  # fmt: skip
                if rng.random() < 0.7:  # answered; the rest wait for a reply on My day
                    us = Party("email", account.address, str(rep), "from")
                    to = Party("email", identity.normalized, contact.display_name, "to")
                    messages.append(
                        NormalizedMessage(
                            channel="email", direction="outbound",
                            external_id=f"demo-re-{contact.pk}-{n}@threadline-demo.example",
                            sent_at=asked + timedelta(hours=rng.randint(1, 20)), provider_thread_key=root, author=us,
                            counterparts=[to], subject=f"Re: {subject}", body_text=answer, body_display=answer,
                            created_by_id=rep.pk,
                        )
                    )  # fmt: skip
    report.messages += len(ingest_batch(account=account, messages=messages).created)


SOCIAL = [
    ("twitter", "@threadline_demo your app keeps logging me out, this is really annoying 😤",
     "So sorry about that! Could you DM us your account e-mail? We'll look at it right away."),
    ("twitter", "Loving the new dashboard from @threadline_demo, great job team! 🎉",
     "Thank you, that means a lot! 💙"),
    ("facebook", "Does the Pro plan include phone support? Thinking about switching from our current vendor.",
     "Yes: phone support on weekdays 8 to 8. Happy to set up a call to walk you through it."),
    ("facebook", "The export has been broken since the update. Any news?",
     "We shipped a fix this morning; could you try again and tell us if it works?"),
    ("sms", "Hi, can we move tomorrow's appointment to 3pm?", "No problem, 3pm tomorrow is booked. See you then!"),
    ("sms", "Is the offer from last week still valid?", "It is, until the end of the month."),
]  # fmt: skip


def _seed_social(rng: random.Random, reps: list[User], team_of: dict[int, Team], report: SeedReport) -> None:
    """Paused demo X, Facebook and SMS accounts, and a tweet, a page comment or a text (with our answer) for some
    contacts, so a thread shows every channel interleaved with e-mail. Pushed through the same pipeline the real
    connectors use; the accounts are paused until someone enters real credentials."""
    if Message.objects.filter(global_key__startswith="twitter:demo-").exists():
        return
    owner = reps[0]
    accounts = {}
    for kind, name, address in (
        ("twitter", "X @threadline_demo (demo)", "@threadline_demo"),
        ("facebook", "Facebook page (demo)", ""),
        ("sms", "SMS +1 415 555 0100 (demo)", "+14155550100"),
    ):
        accounts[kind], _ = ChannelAccount.objects.get_or_create(
            name=name, kind=kind,
            defaults={"address": address, "owner": owner, "team": team_of[owner.pk],
                      "config": {"page_id": "100000000000001"} if kind == "facebook" else {},
                      "status": ChannelAccount.Status.PAUSED,
                      "last_error": "Demo account: connect it with real credentials (Settings), then resume."},
        )  # fmt: skip
    now = timezone.now()
    by_account: dict[str, list[NormalizedMessage]] = {k: [] for k in accounts}
    for rep in reps:
        for i, contact in enumerate(Contact.objects.filter(owner=rep).order_by("pk")[:12]):
            kind, question, answer = SOCIAL[(i + rep.pk) % len(SOCIAL)]
            asked = now - timedelta(days=rng.randint(0, 20), minutes=rng.randint(0, 600))
            if kind == "sms":
                phone = contact.identities.filter(kind="phone").first()
                if phone is None:
                    continue
                them = Party("phone", phone.normalized, contact.display_name, "from")
                key = f"sms:{accounts['sms'].address}:{phone.normalized}:demo"
            else:
                user_id = str(9_000_000_000 + contact.pk)
                handle = f"{contact.first_name}{contact.pk}".lower()[:15] if kind == "twitter" else ""
                ContactIdentity.objects.get_or_create(
                    kind=kind, normalized=user_id,
                    defaults={"contact": contact, "value": handle or user_id, "handle": handle, "source": "demo"},
                )  # fmt: skip
                them = Party(kind, user_id, contact.display_name, "from", handle)
                key = f"{kind}:demo-conv-{contact.pk}"
            ext = f"demo-{kind}-{contact.pk}"
            by_account[kind].append(
                NormalizedMessage(
                    channel=kind, direction="inbound", external_id=ext, global_key=f"{kind}:demo-{contact.pk}",
                    sent_at=asked, provider_thread_key=key, author=them, counterparts=[them], body_text=question,
                    body_display=question,
                )
            )  # fmt: skip
            to = Party(them.kind, them.address, them.name, "to", them.handle)
            us = Party(them.kind, accounts[kind].address or "page", str(rep), "from")
            by_account[kind].append(
                NormalizedMessage(
                    channel=kind, direction="outbound", external_id=f"{ext}-re",
                    global_key=f"{kind}:demo-re-{contact.pk}", sent_at=asked + timedelta(minutes=rng.randint(5, 90)),
                    provider_thread_key=key, author=us, counterparts=[to], body_text=answer, body_display=answer,
                    created_by_id=rep.pk, delivery="delivered" if kind == "sms" else "sent",
                )
            )  # fmt: skip
    for kind, messages in by_account.items():
        if messages:
            report.messages += len(ingest_batch(account=accounts[kind], messages=messages).created)


DEMO_ACTIVITIES = [
    ("call", "Demo: check in on the rollout"), ("task", "Demo: send the proposal"),
    ("meeting", "Demo: quarterly review"), ("email", "Demo: share the case study"),
]  # fmt: skip


def _seed_activities(rng: random.Random, reps: list[User], report: SeedReport) -> None:
    """Open calls and tasks for each rep (some overdue, some today, some next week), so My day has content."""
    if Activity.objects.filter(subject__startswith="Demo: ").exists():
        return
    now = timezone.now()
    rows = []
    for rep in reps:
        for contact in Contact.objects.filter(owner=rep).order_by("pk")[12:20]:
            kind, subject = rng.choice(DEMO_ACTIVITIES)
            rows.append(
                Activity(
                    kind=kind, subject=subject, owner=rep, team_id=contact.team_id, contact=contact,
                    company_id=contact.company_id, created_by=rep,
                    due_at=now + timedelta(hours=rng.randint(-72, 120)), duration_minutes=30,
                )
            )  # fmt: skip
    report.activities += len(bulk_create_with_history(rows, Activity, batch_size=500))
