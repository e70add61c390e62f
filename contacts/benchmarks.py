"""`manage.py bench contacts --contacts N`: search, contact page, timeline, list API and import at scale.

Everything happens in ONE transaction that is rolled back at the end, so the database is left as it was (only
sequences advance, as they do for any insert). Data is generated with COPY from streamed CSV, never the ORM:

- a few teams, reps and managers (ORM: a dozen rows), N/20 companies, N contacts with an e-mail each and a phone
  for two thirds of them, search vectors built by SQL with contact_search_refresh's exact expression, ANALYZE;
- for the contacts whose page and timeline are measured: a few life events and history rows.

The deep API page is reached with a DRF cursor built for a position near the low end of the generated ids
(base64 of "p=<id>", exactly what CursorPagination.encode_cursor emits), so the page starts about 1,000 rows
above the oldest contact: the worst case for OFFSET pagination and the same cost as page 1 for a keyset.
"""

from __future__ import annotations

import base64
import csv
import io
import random
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from accounts.models import Membership, Team, User, Visibility
from contacts.models import Company, Contact, ContactIdentity
from contacts.selectors import contact_search_ids
from contacts.selectors.timeline import contact_timeline
from crm.bench import Benchmark, p95_ms, register

SEED = 20261125
FIRST = [
    "James",
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "William",
    "Elizabeth",
    "David",
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
    "Nancy",
    "Daniel",
    "Lisa",
    "Matthew",
    "Betty",
    "Anthony",
    "Margaret",
    "Mark",
    "Sandra",
    "Donald",
    "Ashley",
    "Steven",
    "Kimberly",
    "Paul",
    "Emily",
    "Andrew",
    "Donna",
    "Joshua",
    "Michelle",
    "Kenneth",
    "Dorothy",
    "Kevin",
    "Carol",
    "Brian",
    "Amanda",
    "George",
    "Melissa",
    "Edward",
    "Deborah",
    "Ronald",
    "Stephanie",
    "Timothy",
    "Rebecca",
    "Jason",
    "Sharon",
    "Jeffrey",
    "Laura",
    "Ryan",
    "Cynthia",
    "Jacob",
    "Kathleen",
    "Gary",
    "Amy",
    "Nicholas",
    "Shirley",
    "Eric",
    "Angela",
    "Jonathan",
    "Helen",
    "Stephen",
    "Anna",
    "Larry",
    "Brenda",
    "Justin",
    "Pamela",
    "Scott",
    "Nicole",
    "Brandon",
    "Emma",
    "Benjamin",
    "Samantha",
    "Samuel",
    "Katherine",
    "Gregory",
    "Christine",
    "Frank",
    "Debra",
    "Alexander",
    "Rachel",
    "Raymond",
    "Catherine",
    "Patrick",
    "Carolyn",
    "Jack",
    "Janet",
    "Dennis",
    "Ruth",
    "Jerry",
    "Maria",
    "Tyler",
    "Heather",
    "Aaron",
    "Diane",
    "Jose",
    "Virginia",
    "Adam",
    "Julie",
    "Henry",
    "Joyce",
    "Nathan",
    "Victoria",
    "Douglas",
    "Olivia",
    "Zachary",
    "Kelly",
    "Peter",
    "Christina",
    "Kyle",
    "Lauren",
    "Walter",
    "Joan",
    "Ethan",
    "Evelyn",
    "Jeremy",
    "Judith",
    "Harold",
    "Megan",
    "Keith",
    "Cheryl",
    "Christian",
    "Andrea",
    "Roger",
    "Hannah",
    "Noah",
    "Martha",
    "Gerald",
    "Jacqueline",
]
SYLLABLES = [
    "an",
    "ber",
    "cal",
    "dor",
    "el",
    "fen",
    "gar",
    "hol",
    "is",
    "jen",
    "kar",
    "lor",
    "mon",
    "nor",
    "ol",
    "par",
    "quin",
    "ros",
    "sil",
    "tor",
    "ul",
    "ven",
    "wil",
    "xan",
    "yor",
    "zel",
    "brook",
    "ston",
    "field",
    "man",
    "son",
    "ley",
    "ford",
    "wood",
    "well",
    "ham",
    "ton",
]
WORDS = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Cyberdyne",
    "Soylent",
    "Hooli",
    "Vandelay",
    "Tyrell",
    "Wonka",
    "Oscorp",
    "Massive",
    "Dynamic",
    "Pied",
    "Piper",
    "Aperture",
    "Black",
    "Mesa",
    "Blue",
    "Sun",
    "Nakatomi",
    "Gringotts",
    "Monarch",
    "Prestige",
    "Virtucon",
    "Zorg",
    "Aviato",
    "Bluth",
    "Dunder",
]
INDUSTRIES = ["Software", "Retail", "Finance", "Health", "Energy", "Media", "Logistics", "Education"]
STAGES = list(Contact.Stage.values)


class _CsvStream(io.TextIOBase):
    """A read()-able file over generated rows, so COPY streams without holding a million rows in memory."""

    def __init__(self, rows: Iterable[Iterable[Any]]) -> None:
        self._rows = iter(rows)
        self._buffer = ""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:  # type: ignore[override]
        want = size if size and size > 0 else 1 << 20
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
        while len(self._buffer) + out.tell() < want:
            row = next(self._rows, None)
            if row is None:
                break
            writer.writerow(row)
        self._buffer += out.getvalue()
        chunk, self._buffer = self._buffer[:want], self._buffer[want:]
        return chunk


def _copy(table: str, columns: list[str], rows: Iterable[Iterable[Any]]) -> None:
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)"
    with connection.cursor() as cursor:
        cursor.cursor.copy_expert(sql, _CsvStream(rows), size=1 << 20)


def _reserve_ids(table: str, count: int) -> int:
    """First of ``count`` consecutive fresh ids of ``table`` (the identity sequence is moved past them)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
        (sequence,) = cursor.fetchone()
        cursor.execute("SELECT nextval(%s)", [sequence])
        (first,) = cursor.fetchone()
        cursor.execute("SELECT setval(%s, %s)", [sequence, first + count])
    return int(first)


def _pg_array(values: list[str]) -> str:
    return "{" + ",".join('"' + v.replace('"', "") + '"' for v in values) + "}"


def _last_name(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 2, 3)))).capitalize()


def _phone(i: int) -> tuple[str, str]:
    """(as typed, E.164) for contact number i: unique, US numbers spread over 700 area codes."""
    area, line = 201 + i % 700, 2_000_000 + i // 700
    digits = f"{line:07d}"
    return f"({area}) {digits[:3]}-{digits[3:]}", f"+1{area}{digits}"


class _World:
    """What the generator made, for picking realistic queries and ids."""

    def __init__(self) -> None:
        self.user: User | None = None
        self.teams: list[Team] = []
        self.reps: list[User] = []
        self.contact_first_id = 0
        self.names: list[tuple[str, str]] = []
        self.emails: list[str] = []
        self.phones: list[str] = []
        self.visible_ids: list[int] = []


def _generate(count: int, rng: random.Random) -> _World:
    world = _World()
    now = timezone.now()
    stamp = int(time.time())
    world.teams = [Team.objects.create(name=f"bench-{stamp}-team-{n}") for n in range(4)]
    for t, team in enumerate(world.teams):
        for r in range(3):
            rep = User.objects.create(username=f"bench-{stamp}-rep-{t}-{r}", role=User.Role.REP)
            Membership.objects.create(user=rep, team=team)
            world.reps.append(rep)
    # A manager of two of the four teams: sees about half of everything, the hard case for visibility filters.
    manager = User.objects.create(username=f"bench-{stamp}-manager", role=User.Role.MANAGER)
    for team in world.teams[:2]:
        Membership.objects.create(user=manager, team=team, is_manager=True)
    world.user = manager

    companies = max(1, count // 20)
    company_first = _reserve_ids(Company._meta.db_table, companies)
    company_names: list[str] = []
    company_domains: list[str] = []

    def company_rows() -> Iterator[list[Any]]:
        for n in range(companies):
            a, b = rng.choice(WORDS), rng.choice(WORDS)
            name = f"{a} {b} {n}"
            domain = f"{a}{b}{n}.com".lower()
            company_names.append(name)
            company_domains.append(domain)
            rep = world.reps[n % len(world.reps)]
            team = world.teams[(n % len(world.reps)) // 3]
            yield [company_first + n, Visibility.TEAM, name, _pg_array([domain]), rng.choice(INDUSTRIES), "", "", "",
                   "", "", "", "US", "{}", "", now.isoformat(), now.isoformat(), rep.pk, team.pk]  # fmt: skip

    _copy(Company._meta.db_table,
          ["id", "visibility", "name", "domains", "industry", "size", "website", "street", "city", "region",
           "postal_code", "country", "tags", "notes", "created_at", "updated_at", "owner_id", "team_id"],
          company_rows())  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE contacts_company SET search_vector = setweight(to_tsvector('simple', name), 'A') || "
            "setweight(to_tsvector('simple', array_to_string(domains, ' ') || ' ' || "
            "translate(array_to_string(domains, ' '), '.-', '  ') || ' ' || industry), 'B') WHERE id >= %s",
            [company_first],
        )

    world.contact_first_id = first = _reserve_ids(Contact._meta.db_table, count)
    identity_first = _reserve_ids(ContactIdentity._meta.db_table, count * 2)
    identities: list[list[Any]] = []
    manager_teams = {t.pk for t in world.teams[:2]}
    # Staging table: contacts plus their identity text, so the search vector is computed while inserting (one
    # write per row, instead of a COPY followed by an UPDATE that rewrites every row and its GIN entries).
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE bench_contact (id bigint, visibility varchar, first_name varchar, last_name varchar,"
            " title varchar, lifecycle_stage varchar, tier varchar, company_id bigint, owner_id bigint,"
            " team_id bigint, country varchar, last_touch_at timestamptz, created_at timestamptz,"
            " identity_text text) ON COMMIT DROP"
        )

    def contact_rows() -> Iterator[list[Any]]:
        ident_id = identity_first
        for n in range(count):
            pk = first + n
            given, family = rng.choice(FIRST), _last_name(rng)
            company = rng.randrange(companies)
            email = f"{given}.{family}{n}@{company_domains[company]}".lower()
            texts = [f"{email} {email.translate(str.maketrans('@._-+/', '      '))} "]
            identities.append([ident_id, "email", email, email, "", "work", True, False, "bench", pk])
            ident_id += 1
            if n % 3:
                typed, e164 = _phone(n)
                identities.append([ident_id, "phone", typed, e164, "", "mobile", False, False, "bench", pk])
                texts.append(f"{typed} {typed.translate(str.maketrans('@._-+/', '      '))} ")
                ident_id += 1
                if len(world.phones) < 5000:
                    world.phones.append(typed)
            rep = world.reps[rng.randrange(len(world.reps))]
            team = world.teams[world.reps.index(rep) // 3]
            visibility = Visibility.PRIVATE if n % 10 == 0 else Visibility.TEAM
            if len(world.names) < 5000:
                world.names.append((given, family))
                world.emails.append(email)
            if team.pk in manager_teams and len(world.visible_ids) < 20000:
                world.visible_ids.append(pk)
            touched = (now - timezone.timedelta(days=rng.randrange(720))).isoformat()
            yield [pk, visibility, given, family, rng.choice(("", "CEO", "CTO", "Buyer", "Engineer")),
                   STAGES[n % len(STAGES)], "ABC"[n % 3], company_first + company, rep.pk, team.pk, "US", touched,
                   now.isoformat(), " ".join(texts)]  # fmt: skip

    _copy("bench_contact",
          ["id", "visibility", "first_name", "last_name", "title", "lifecycle_stage", "tier", "company_id",
           "owner_id", "team_id", "country", "last_touch_at", "created_at", "identity_text"],
          contact_rows())  # fmt: skip
    with connection.cursor() as cursor:
        # The same document as contacts.services._CONTACT_SEARCH_SQL: names (A), title and company (B), identities
        # (C, e-mail split at punctuation).
        cursor.execute(
            """
            INSERT INTO contacts_contact (id, visibility, first_name, last_name, title, lifecycle_stage, tier, tags,
                street, city, region, postal_code, country, time_zone, language, notes, custom_fields,
                do_not_contact, last_touch_at, created_at, updated_at, company_id, owner_id, team_id, search_vector)
            SELECT b.id, b.visibility, b.first_name, b.last_name, b.title, b.lifecycle_stage, b.tier, '{}',
                '', '', '', '', b.country, '', '', '', '{}', false, b.last_touch_at, b.created_at, b.created_at,
                b.company_id, b.owner_id, b.team_id,
                setweight(to_tsvector('simple', b.first_name || ' ' || b.last_name), 'A')
                || setweight(to_tsvector('simple', b.title || ' ' || coalesce(co.name, '')), 'B')
                || setweight(to_tsvector('simple', b.identity_text), 'C')
            FROM bench_contact b LEFT JOIN contacts_company co ON co.id = b.company_id
            ORDER BY b.id
            """
        )
    _copy(ContactIdentity._meta.db_table,
          ["id", "kind", "value", "normalized", "handle", "label", "is_primary", "verified", "source", "contact_id",
           "created_at", "updated_at"],
          ([*row, now.isoformat(), now.isoformat()] for row in identities))  # fmt: skip
    identities.clear()
    with connection.cursor() as cursor:
        for table in ("contacts_company", "contacts_contact", "contacts_contactidentity"):
            cursor.execute(f"ANALYZE {table}")
    return world


def _timeline_data(world: _World, contact_ids: list[int], rng: random.Random) -> None:
    """A few life events and history rows for the contacts whose page and timeline are measured."""
    now = timezone.now()
    events = (
        [pk, kind, title, (now - timezone.timedelta(days=rng.randrange(3000))).date().isoformat(), "", "bench", "{}",
         now.isoformat()]
        for pk in contact_ids
        for kind, title in (("job_change", "Joined a new company"), ("promotion", "Promoted"), ("birthday", ""))
    )  # fmt: skip
    _copy("contacts_lifeevent", ["contact_id", "kind", "title", "date", "note", "source", "data", "created_at"], events)
    history = Contact.history.model  # type: ignore[attr-defined]
    columns = [f.column for f in history._meta.concrete_fields if not f.column.startswith("history_")]
    listed = ", ".join(columns)
    with connection.cursor() as cursor:
        # A creation row and a later stage change per measured contact, as simple-history would have written.
        cursor.execute(
            f"INSERT INTO {history._meta.db_table} ({listed}, history_date, history_type, history_user_id) "  # noqa: S608
            f"SELECT {listed}, now() - interval '30 days', '+', NULL FROM contacts_contact WHERE id = ANY(%s)",
            [contact_ids],
        )
        changed = ", ".join("'customer'" if c == "lifecycle_stage" else c for c in columns)
        cursor.execute(
            f"INSERT INTO {history._meta.db_table} ({listed}, history_date, history_type, history_user_id) "  # noqa: S608
            f"SELECT {changed}, now() - interval '2 days', '~', %s FROM contacts_contact WHERE id = ANY(%s)",
            [world.reps[0].pk, contact_ids],
        )


def _queries(world: _World, samples: int, rng: random.Random) -> list[str]:
    out: list[str] = []
    for n in range(samples):
        kind = n % 3
        if kind == 0:
            given, family = rng.choice(world.names)
            word = rng.choice((given, family))
            out.append(word[: rng.randint(3, 5)])
        elif kind == 1:
            email = rng.choice(world.emails)
            local = email.split("@")[0]
            out.append(local[: rng.randint(4, len(local))] if n % 2 else email[: email.index("@") + 3])
        else:
            typed = rng.choice(world.phones)
            out.append(typed[: rng.randint(9, len(typed))])  # "(617) 555-12"-style partial numbers
    return out


def _timed(samples: list[Any], fn: Callable[[Any], Any]) -> list[float]:
    durations = []
    for sample in samples:
        start = time.perf_counter()
        fn(sample)
        durations.append(time.perf_counter() - start)
    return durations


def _import_rows_per_s(user: User, rows: int, rng: random.Random) -> tuple[float | None, str]:
    try:
        from contacts.services.imports import import_job_create, import_job_process, import_job_start
    except ImportError as exc:  # the import module is another area's; report instead of failing the bench
        return None, f"contacts.services.imports is not available: {exc}"
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["First name", "Last name", "Email", "Phone", "Title"])
    for n in range(rows):
        _, e164 = _phone(5_000_000 + n)
        writer.writerow([rng.choice(FIRST), _last_name(rng), f"import{n}.{rng.randrange(10**6)}@bench-import.test",
                         e164, "Imported"])  # fmt: skip
    data = out.getvalue().encode()
    start = time.perf_counter()
    job = import_job_create(actor=user, file_name="bench.csv", data=data)
    job = import_job_start(job=job, actor=user, mapping=job.mapping, on_duplicate="skip")
    job = import_job_process(job_id=job.pk)
    elapsed = time.perf_counter() - start
    note = f"status={job.status} created={job.created_count} errors={job.error_count} mapping={job.mapping}"
    return round(rows / elapsed, 1), note


def _deep_cursor(position: int) -> str:
    # What rest_framework.pagination.CursorPagination.encode_cursor emits for Cursor(offset=0, reverse=False,
    # position=str(position)): the URL-encoded token dict, base64-encoded.
    return base64.b64encode(f"p={position}".encode("ascii")).decode("ascii")


def run(*, contacts: int = 1_000_000, samples: int = 200, import_rows: int = 20_000, **_: Any) -> dict[str, Any]:
    rng = random.Random(SEED)
    figures: dict[str, Any] = {"contacts": contacts}
    with transaction.atomic():
        try:
            started = time.perf_counter()
            world = _generate(contacts, rng)
            figures["generate_s"] = round(time.perf_counter() - started, 1)
            user = world.user
            assert user is not None
            measured = rng.sample(world.visible_ids, min(samples, len(world.visible_ids)))
            _timeline_data(world, measured, rng)

            queries = _queries(world, samples, rng)
            contact_search_ids(user=user, query=queries[0])  # warm caches (team ids, plans) before timing
            search = _timed(queries, lambda q: contact_search_ids(user=user, query=q))
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL enable_indexscan = off")
                cursor.execute("SET LOCAL enable_bitmapscan = off")
            try:
                seqscan = _timed(queries, lambda q: contact_search_ids(user=user, query=q))
            finally:
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL enable_indexscan = on")
                    cursor.execute("SET LOCAL enable_bitmapscan = on")
            figures["search_p95_ms"] = p95_ms(search)
            figures["search_seqscan_p95_ms"] = p95_ms(seqscan)

            # A real host name of this deployment, so ALLOWED_HOSTS accepts the in-process requests.
            hosts = [h.lstrip(".") for h in settings.ALLOWED_HOSTS if h != "*"] or ["localhost"]
            client = Client(HTTP_HOST=hosts[0])
            secure = bool(settings.SECURE_SSL_REDIRECT)  # a per-request flag; Client() ignores it
            client.force_login(user)

            def detail(pk: int) -> None:
                response = client.get(f"/contacts/{pk}/", secure=secure)
                assert response.status_code == 200, response.status_code

            detail(measured[0])
            figures["detail_p95_ms"] = p95_ms(_timed(measured, detail))
            contacts_by_id = {c.pk: c for c in Contact.objects.filter(pk__in=measured)}
            figures["timeline_p95_ms"] = p95_ms(
                _timed(measured, lambda pk: contact_timeline(user=user, contact=contacts_by_id[pk], before=None))
            )

            def api(path: str) -> None:
                response = client.get(path, secure=secure)
                assert response.status_code == 200, response.status_code

            deep = _deep_cursor(world.contact_first_id + min(1000, contacts // 2))
            first_page = [f"/api/v1/contacts/?page_size=50&_={n}" for n in range(samples)]
            deep_page = [f"/api/v1/contacts/?page_size=50&cursor={deep}&_={n}" for n in range(samples)]
            api(first_page[0])
            api(deep_page[0])
            figures["list_api_first_p95_ms"] = p95_ms(_timed(first_page, api))
            figures["list_api_deep_p95_ms"] = p95_ms(_timed(deep_page, api))

            figures["import_rows_per_s"], figures["import_note"] = _import_rows_per_s(user, import_rows, rng)
        finally:
            transaction.set_rollback(True)
    return figures


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument("--contacts", type=int, default=1_000_000, help="How many contacts to generate.")
    parser.add_argument("--samples", type=int, default=200, help="Timed samples per measurement.")
    parser.add_argument("--import-rows", type=int, default=20_000, help="Rows in the imported CSV.")


register(
    Benchmark(
        name="contacts",
        run=run,
        add_arguments=add_arguments,
        help="Contacts at scale: search (and its seq-scan baseline), contact page, timeline, list API, import.",
    )
)
