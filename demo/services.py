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
from contacts.models import Company, Contact, ContactIdentity
from contacts.services import company_search_refresh, contact_search_refresh

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

    def __str__(self) -> str:
        return (
            f"created {self.teams} teams, {self.users} users, {self.companies} companies, "
            f"{self.contacts} contacts, {self.identities} identities"
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
    return report
