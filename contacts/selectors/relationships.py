"""Reads of the relationship graph, visibility applied: an edge shows only when both of its ends are visible."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL

from accounts.models import User
from accounts.selectors import visibility_q, visible
from contacts.models import Contact, Relationship
from crm.errors import NotFound


def relationship_list(*, user: User, contact_id: int | None = None) -> QuerySet[Relationship]:
    qs = Relationship.objects.filter(visibility_q(user, prefix="from_contact__")).filter(
        visibility_q(user, prefix="to_contact__")
    )
    if contact_id is not None:
        qs = qs.filter(Q(from_contact_id=contact_id) | Q(to_contact_id=contact_id))
    return qs.select_related("from_contact", "to_contact")


def relationship_get(*, user: User, pk: int) -> Relationship:
    relationship = relationship_list(user=user).filter(pk=pk).first()
    if relationship is None:
        raise NotFound("No such relationship.")
    return relationship


@dataclass(frozen=True)
class RelationshipRow:
    """An edge seen from one contact: ``other`` is the far end, ``outgoing`` says which way the edge points."""

    relationship: Relationship
    other: Contact
    outgoing: bool

    @property
    def label(self) -> str:
        kind = self.relationship.get_kind_display()
        return kind if self.outgoing else f"{kind} (from)"


def contact_relationships(*, user: User, contact: Contact) -> list[RelationshipRow]:
    """Every edge touching ``contact`` in both directions whose other end ``user`` may see. One query."""
    rows = []
    for rel in relationship_list(user=user, contact_id=contact.pk).order_by("-strength", "id"):
        outgoing = rel.from_contact_id == contact.pk
        rows.append(RelationshipRow(rel, rel.to_contact if outgoing else rel.from_contact, outgoing))
    return rows


@dataclass(frozen=True)
class IntroductionPath:
    """``contacts[0]`` is a contact owned by the user or a teammate; ``contacts[-1]`` is the target.

    ``kinds[i]`` links ``contacts[i]`` and ``contacts[i + 1]``; ``forward[i]`` is True when the stored edge points
    from ``contacts[i]`` to ``contacts[i + 1]``.
    """

    contacts: list[Contact]
    kinds: list[str]
    forward: list[bool]

    @property
    def hops(self) -> int:
        return len(self.kinds)

    @property
    def introducer(self) -> Contact:
        return self.contacts[0]

    @property
    def steps(self) -> list[tuple[Contact, str, bool, Contact]]:
        labels = dict(Relationship.Kind.choices)
        return [
            (self.contacts[i], labels.get(self.kinds[i], self.kinds[i]), self.forward[i], self.contacts[i + 1])
            for i in range(self.hops)
        ]


# The walk starts at the target and moves outwards, so it explores one neighbourhood of at most ``max_hops``
# instead of one per starting contact. Every node it enters must be visible, the path array prevents cycles, and
# a walk stops at the first starting contact it reaches: any longer path through a starting contact is never the
# shortest one for the contact that starts it.
# Visibility and "is a starting contact" are checked per node by primary key ({visible_sql} is the policy's
# subquery correlated on the candidate node), never as a set: at a million contacts the sets of visible or
# team-owned contacts hold hundreds of thousands of ids, while the walk touches a few dozen nodes.
_INTRODUCTIONS_SQL = """
WITH RECURSIVE
team_users AS (
    SELECT %s::bigint AS user_id
    UNION
    SELECT m.user_id FROM accounts_membership m
    WHERE m.team_id IN (SELECT team_id FROM accounts_membership WHERE user_id = %s)
),
edges AS (
    -- a = the node nearer the target, b = the next node outwards; forward = the stored edge points b -> a.
    SELECT r.to_contact_id AS a, r.from_contact_id AS b, r.kind, true AS forward FROM contacts_relationship r
    UNION ALL
    SELECT r.from_contact_id AS a, r.to_contact_id AS b, r.kind, false AS forward FROM contacts_relationship r
),
walk(node, path, kinds, forward, depth, is_start) AS (
    SELECT %s::bigint, ARRAY[%s::bigint], ARRAY[]::varchar[], ARRAY[]::boolean[], 0, false
    UNION ALL
    SELECT e.b, w.path || e.b, w.kinds || e.kind::varchar, w.forward || e.forward, w.depth + 1,
           EXISTS (SELECT 1 FROM contacts_contact s
                   WHERE s.id = e.b AND s.owner_id IN (SELECT user_id FROM team_users))
    FROM walk w JOIN edges e ON e.a = w.node
    WHERE w.depth < %s
      AND NOT w.is_start
      AND NOT e.b = ANY(w.path)
      AND EXISTS ({visible_sql})
),
shortest AS (
    SELECT DISTINCT ON (w.node) w.node, w.path, w.kinds, w.forward, w.depth
    FROM walk w
    WHERE w.is_start
    ORDER BY w.node, w.depth, w.path
)
SELECT path, kinds, forward FROM shortest ORDER BY depth, path LIMIT %s
"""


def introduction_paths(*, user: User, target: Contact, max_hops: int = 3, limit: int = 10) -> list[IntroductionPath]:
    """Shortest paths (at most ``max_hops`` edges, either direction) from contacts owned by ``user`` or by a
    member of one of their teams to ``target``: one path per introducer, shortest first.

    Computed in SQL with a recursive CTE; every contact on a path is visible to ``user``. Two queries: the walk,
    then the contacts on the paths.
    """
    max_hops = max(1, min(int(max_hops), 3))
    node_is_visible = visible(Contact.objects.order_by().filter(pk=RawSQL("e.b", [])), user).values("id")
    visible_sql, visible_params = node_is_visible.query.sql_with_params()
    sql = _INTRODUCTIONS_SQL.format(visible_sql=visible_sql)
    params = [user.pk, user.pk, target.pk, target.pk, max_hops, *visible_params, max(1, int(limit))]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return []
    ids = {pk for path, _, _ in rows for pk in path}
    contacts = Contact.objects.select_related("owner", "company").in_bulk(ids)
    paths = []
    for path, kinds, forward in rows:
        # The walk ran from the target outwards; turn it round so it reads introducer -> ... -> target. The
        # ``forward`` flags were computed for that reading already (see the edges CTE).
        ordered = [contacts[pk] for pk in reversed(path)]
        paths.append(IntroductionPath(ordered, list(reversed(kinds)), list(reversed(forward))))
    return paths


def contact_resolve(*, user: User, text: str) -> Contact:
    """The one visible contact ``text`` names: "#123" / "123", or a search (name, e-mail, phone, handle) with a
    single match, or a single exact name among several matches. Raises NotFound with a message a person can act
    on otherwise."""
    from contacts.selectors import contact_get, contact_search_ids

    text = text.strip()
    if text.lstrip("#").isdecimal():
        return contact_get(user=user, pk=int(text.lstrip("#")))
    ids = contact_search_ids(user=user, query=text, limit=20)
    candidates = list(Contact.objects.filter(pk__in=ids).order_by("id")[:20])
    if len(candidates) > 1:
        exact = [c for c in candidates if c.display_name.lower() == text.lower()]
        candidates = exact or candidates
    if not candidates:
        raise NotFound(f"No contact matches “{text}”.")
    if len(candidates) > 1:
        raise NotFound(f"{len(candidates)} contacts match “{text}”; type more of the name, or #id.")
    return candidates[0]
