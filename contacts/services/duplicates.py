"""The duplicate finder: pairs of contacts that may be one person, found in SQL on core PostgreSQL.

No pg_trgm, fuzzystrmatch or unaccent: every comparison is an expression over columns that a hash join can use
as its key, so the finder never compares every contact with every other one.

**Strong** matches (score 1.0) share a *canonical identity* even though ``UNIQUE(kind, normalized)`` already stops
exact duplicates:

- e-mail: lower-cased, ``+tag`` removed from the local part; for gmail.com/googlemail.com the dots of the local part
  are removed and googlemail.com counts as gmail.com. E-mail addresses typed as kind *other* or *im* take part.
- phone: the national significant number, approximated as the last 9 digits of the E.164 value, so "+49 30 1234567"
  and a number saved with the wrong default region still meet.
- social: the same handle stored under different kinds, where at least one side is untyped (*other* or *im*), e.g.
  "twitter.com/Jane" typed as *other* and "@jane" as *twitter*. Two different networks with the same handle are not
  evidence enough.

**Weak** matches (score 0.5-0.9) have a similar name plus the same company or the same e-mail domain (freemail
domains excluded). Blocking is on the *last-name key*: the lower-cased last name without vowels and with doubled
letters collapsed ("Meyer", "Meier" -> "mr"; "Schmitt" -> "schmt"), joined with the company id or the e-mail domain.
Blocks with more than ``MAX_BLOCK`` members (a very common name at a very large company) are skipped: they would
cost quadratic work for pairs nobody can review. Inside a block, first names must be similar:

- the same (letters only, lower-cased): 0.7;
- one a prefix of the other, at least 2 letters ("Bob"/"Bobby"): 0.6;
- the same initial where one is at most 2 letters long ("J"/"J."/"Jo" vs "Jane"): 0.5;

plus 0.1 when the last names are identical (not only the same key), plus 0.1 when the company (rather than only
the e-mail domain) is the same. So an identical name at the same company scores 0.9, the upper bound for weak.

The run is idempotent: it upserts rows with ``contact_a_id < contact_b_id``; a pair a person dismissed (or merged)
is never touched again; open pairs whose contacts no longer match are removed.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User
from contacts.models import DuplicateCandidate
from crm.errors import DomainError

FREEMAIL_DOMAINS = (
    "gmail.com", "googlemail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com", "aol.com", "web.de",
    "live.com", "msn.com", "me.com",
)  # fmt: skip
# LIKE patterns: every country variant of these providers.
FREEMAIL_PATTERNS = ("gmx.%", "proton%", "yahoo.%", "hotmail.%", "outlook.%")
MAX_BLOCK = 200

# Canonical keys of every identity that can carry one. ``kind`` is kept so social matches can require
# different kinds (the same kind and value is already unique).
_KEYS_SQL = r"""
keys AS (
    SELECT i.contact_id, i.kind,
        'email:' || CASE WHEN split_part(i.normalized, '@', 2) IN ('gmail.com', 'googlemail.com')
            THEN replace(regexp_replace(split_part(i.normalized, '@', 1), '\+.*$', ''), '.', '') || '@gmail.com'
            ELSE regexp_replace(split_part(i.normalized, '@', 1), '\+.*$', '') || '@'
                 || split_part(i.normalized, '@', 2)
        END AS key
    FROM contacts_contactidentity i
    WHERE i.kind IN ('email', 'other', 'im') AND lower(i.normalized) ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'
  UNION ALL
    SELECT i.contact_id, i.kind, 'phone:' || right(regexp_replace(i.normalized, '\D', '', 'g'), 9)
    FROM contacts_contactidentity i
    WHERE (i.kind = 'phone' OR (i.kind IN ('other', 'im') AND i.normalized ~ '^\+?[0-9\s().\-/]+$'))
      AND length(regexp_replace(i.normalized, '\D', '', 'g')) >= 9
  UNION ALL
    SELECT i.contact_id, i.kind, 'handle:' || rtrim(regexp_replace(lower(i.normalized),
        '^(https?://)?(www\.)?(twitter\.com/|x\.com/|facebook\.com/|linkedin\.com/in/|skype:)?@?', ''), '/')
    FROM contacts_contactidentity i
    WHERE i.kind IN ('twitter', 'facebook', 'linkedin', 'skype', 'other', 'im')
      AND i.normalized !~ '@[^@\s]+\.' AND i.normalized !~ '^\+?[0-9\s().\-/]+$'
),
shared AS (
    SELECT key FROM keys GROUP BY key HAVING count(DISTINCT contact_id) > 1
),
strong AS (
    SELECT k1.contact_id AS a, k2.contact_id AS b, 'strong'::text AS strength, 1.0::float AS score,
        CASE split_part(k1.key, ':', 1)
            WHEN 'email' THEN 'Same e-mail address (' || substr(k1.key, 7) || ')'
            WHEN 'phone' THEN 'Same phone number (…' || substr(k1.key, 7) || ')'
            ELSE 'Same handle (' || substr(k1.key, 8) || ') as ' || k1.kind || ' and ' || k2.kind
        END AS reason
    FROM (SELECT keys.* FROM keys JOIN shared USING (key)) k1
    JOIN (SELECT keys.* FROM keys JOIN shared USING (key)) k2 ON k1.key = k2.key AND k1.contact_id < k2.contact_id
    WHERE split_part(k1.key, ':', 1) <> 'handle'
       OR (k1.kind <> k2.kind AND (k1.kind IN ('other', 'im') OR k2.kind IN ('other', 'im')))
)"""

_WEAK_SQL = r"""
people AS (
    SELECT c.id, c.company_id,
        lower(trim(c.last_name)) AS last,
        regexp_replace(regexp_replace(lower(trim(c.last_name)), '[aeiouy\s''.-]', '', 'g'), '(.)\1+', '\1', 'g')
            AS last_key,
        regexp_replace(lower(c.first_name), '[^[:alpha:]]', '', 'g') AS first
    FROM contacts_contact c
    WHERE trim(c.last_name) <> '' AND regexp_replace(c.first_name, '[^[:alpha:]]', '', 'g') <> ''
),
domains AS (
    SELECT DISTINCT i.contact_id, split_part(i.normalized, '@', 2) AS domain
    FROM contacts_contactidentity i
    WHERE i.kind = 'email' AND split_part(i.normalized, '@', 2) <> ''
      AND split_part(i.normalized, '@', 2) <> ALL(%(freemail)s)
      AND NOT split_part(i.normalized, '@', 2) LIKE ANY(%(freemail_patterns)s)
),
blocked AS (
    SELECT p.*, 'company:' || p.company_id::text AS block, true AS by_company
    FROM people p WHERE p.company_id IS NOT NULL
  UNION ALL
    SELECT p.*, 'domain:' || d.domain, false
    FROM people p JOIN domains d ON d.contact_id = p.id
),
big_blocks AS (
    SELECT last_key, block FROM blocked GROUP BY last_key, block HAVING count(*) > %(max_block)s
),
candidates AS (
    SELECT b.* FROM blocked b
    WHERE b.last_key <> '' AND NOT EXISTS (
        SELECT 1 FROM big_blocks g WHERE g.last_key = b.last_key AND g.block = b.block)
),
weak AS (
    SELECT p1.id AS a, p2.id AS b, 'weak'::text AS strength,
        (CASE WHEN p1.first = p2.first THEN 0.7
              WHEN least(length(p1.first), length(p2.first)) >= 2
                   AND (p1.first LIKE p2.first || '%%' OR p2.first LIKE p1.first || '%%') THEN 0.6
              ELSE 0.5 END
         + CASE WHEN p1.last = p2.last THEN 0.1 ELSE 0.0 END
         + CASE WHEN p1.by_company THEN 0.1 ELSE 0.0 END)::float AS score,
        'Similar name and same ' || CASE WHEN p1.by_company THEN 'company' ELSE 'e-mail domain ('
            || substr(p1.block, 8) || ')' END AS reason
    FROM candidates p1
    JOIN candidates p2 ON p1.last_key = p2.last_key AND p1.block = p2.block AND p1.id < p2.id
    WHERE p1.first = p2.first
       OR (least(length(p1.first), length(p2.first)) >= 2
           AND (p1.first LIKE p2.first || '%%' OR p2.first LIKE p1.first || '%%'))
       OR (left(p1.first, 1) = left(p2.first, 1) AND least(length(p1.first), length(p2.first)) <= 2)
)"""

# One statement: upsert found pairs (never touching a pair that is no longer open) and remove open pairs that
# no longer match, all from one snapshot, so a concurrent run cannot interleave half of one with the other.
_RUN_SQL = f"""
WITH {_KEYS_SQL},
{_WEAK_SQL},
found AS (
    SELECT DISTINCT ON (a, b) a, b, strength, score, left(reason, 300) AS reason
    FROM (SELECT a, b, strength, score, reason FROM strong UNION ALL SELECT a, b, strength, score, reason FROM weak) x
    WHERE %(all)s OR a = ANY(%(ids)s) OR b = ANY(%(ids)s)
    ORDER BY a, b, score DESC, strength
),
upserted AS (
    INSERT INTO contacts_duplicatecandidate AS d (contact_a_id, contact_b_id, strength, reason, score, status, found_at)
    SELECT a, b, strength, reason, score, 'open', now() FROM found
    ON CONFLICT ON CONSTRAINT duplicate_unique_pair DO UPDATE
        SET strength = EXCLUDED.strength, reason = EXCLUDED.reason, score = EXCLUDED.score
        WHERE d.status = 'open'
          AND (d.strength, d.reason, d.score) IS DISTINCT FROM (EXCLUDED.strength, EXCLUDED.reason, EXCLUDED.score)
    RETURNING 1
),
closed AS (
    DELETE FROM contacts_duplicatecandidate d
    WHERE d.status = 'open'
      AND (%(all)s OR d.contact_a_id = ANY(%(ids)s) OR d.contact_b_id = ANY(%(ids)s))
      AND NOT EXISTS (SELECT 1 FROM found f WHERE f.a = d.contact_a_id AND f.b = d.contact_b_id)
    RETURNING 1
)
SELECT (SELECT count(*) FROM found), (SELECT count(*) FROM upserted), (SELECT count(*) FROM closed)
"""  # noqa: S608 (only module constants are interpolated)


@transaction.atomic
def duplicates_find(*, contact_ids: Iterable[int] | None = None) -> int:
    """Find duplicate pairs (all of them, or only those involving ``contact_ids``) and return how many matched.

    Safe to run any number of times: the same data gives the same rows.
    """
    ids = [int(pk) for pk in contact_ids] if contact_ids is not None else []
    if contact_ids is not None and not ids:
        return 0
    params = {
        "all": contact_ids is None,
        "ids": ids,
        "freemail": list(FREEMAIL_DOMAINS),
        "freemail_patterns": list(FREEMAIL_PATTERNS),
        "max_block": MAX_BLOCK,
    }
    with connection.cursor() as cursor:
        cursor.execute(_RUN_SQL, params)
        found, _upserted, _closed = cursor.fetchone()
    return int(found)


@transaction.atomic
def duplicate_dismiss(*, candidate: DuplicateCandidate, actor: User) -> DuplicateCandidate:
    """Mark a pair "not a duplicate": later scans leave it alone for good."""
    locked = DuplicateCandidate.objects.select_for_update().get(pk=candidate.pk)
    if locked.status == DuplicateCandidate.Status.MERGED:
        raise DomainError("These contacts were already merged.", code="already_merged")
    if locked.status != DuplicateCandidate.Status.DISMISSED:
        locked.status = DuplicateCandidate.Status.DISMISSED
        locked.reviewed_by = actor
        locked.reviewed_at = timezone.now()
        locked.save(update_fields=["status", "reviewed_by", "reviewed_at"])
    return locked


def duplicates_scan_enqueue(*, actor: User) -> None:
    """Start a full scan in the background once the current transaction commits."""
    from contacts.tasks.duplicates import duplicates_find_task

    transaction.on_commit(lambda: duplicates_find_task.delay())
