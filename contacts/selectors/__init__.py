"""Reads for contacts and companies. Every function applies the visibility policy of accounts.selectors."""

from __future__ import annotations

import re

from django.contrib.postgres.search import SearchQuery
from django.db.models import Prefetch, Q, QuerySet

from accounts.models import User
from accounts.selectors import visible
from contacts.identities import phone_search_prefixes
from contacts.models import Company, Contact, ContactIdentity
from crm.errors import NotFound

_WORD_RE = re.compile(r"[\w']+", re.UNICODE)


def contact_list(*, user: User, filters: dict | None = None) -> QuerySet[Contact]:
    filters = filters or {}
    qs = visible(Contact.objects.all(), user).select_related("company", "owner")
    if filters.get("q"):
        qs = qs.filter(pk__in=contact_search_ids(user=user, query=filters["q"]))
    if filters.get("lifecycle_stage"):
        qs = qs.filter(lifecycle_stage=filters["lifecycle_stage"])
    if filters.get("owner"):
        qs = qs.filter(owner_id=filters["owner"])
    if filters.get("company"):
        qs = qs.filter(company_id=filters["company"])
    if filters.get("tag"):
        qs = qs.filter(tags__contains=[filters["tag"]])
    return qs


def contact_get(*, user: User, pk: int) -> Contact:
    """The contact, or NotFound when it does not exist or ``user`` may not see it (indistinguishable)."""
    contact = (
        visible(Contact.objects.all(), user)
        .select_related("company", "owner", "team")
        .prefetch_related(Prefetch("identities", queryset=ContactIdentity.objects.order_by("kind", "id")))
        .filter(pk=pk)
        .first()
    )
    if contact is None:
        raise NotFound("No such contact.")
    return contact


def prefix_tsquery(text: str) -> SearchQuery | None:
    words = [w for w in _WORD_RE.findall(text.lower()) if w][:8]
    if not words:
        return None
    raw = " & ".join(f"{w.replace(chr(39), '')}:*" for w in words if w.replace("'", ""))
    return SearchQuery(raw, search_type="raw", config="simple") if raw else None


def contact_search_ids(*, user: User, query: str, limit: int = 200) -> list[int]:
    """Ids of visible contacts matching ``query`` by name, company, e-mail, phone (any format) or handle.

    Each branch is an index scan: the GIN tsvector index for words, the btree pattern index on normalized
    identities for e-mail, phone and handle prefixes.
    """
    # Postgres refuses NUL in a string parameter: a pasted one would be a 500, not "no results".
    query = query.replace("\x00", "").strip()[:200]
    if not query:
        return []
    identity_q = Q()
    lowered = query.lower()
    if "@" in lowered and not lowered.startswith("@"):
        identity_q |= Q(kind=ContactIdentity.Kind.EMAIL, normalized__startswith=lowered)
    elif lowered.startswith("@"):
        identity_q |= Q(normalized__startswith=lowered)
    for prefix in phone_search_prefixes(query) if re.fullmatch(r"[\d\s()+.\-/]+", query) else []:
        identity_q |= Q(kind=ContactIdentity.Kind.PHONE, normalized__startswith=prefix)
    ids: list[int] = []
    if identity_q:
        by_identity = ContactIdentity.objects.filter(identity_q).values("contact_id")[:limit]
        ids += list(visible(Contact.objects.filter(pk__in=by_identity), user).values_list("id", flat=True)[:limit])
    tsquery = prefix_tsquery(query)
    if tsquery is not None and len(ids) < limit:
        # No ORDER BY: a common prefix ("jam:*") matches tens of thousands of rows at 1M contacts, and sorting
        # them all to keep 200 is what made search slow. Unordered, the bitmap heap scan stops at the limit;
        # the few ids we keep are ordered newest first here.
        by_text = visible(Contact.objects.filter(search_vector=tsquery), user).order_by()
        seen = set(ids)
        ids += sorted((pk for pk in by_text.values_list("id", flat=True)[:limit] if pk not in seen), reverse=True)
    return ids[:limit]


def company_list(*, user: User, filters: dict | None = None) -> QuerySet[Company]:
    filters = filters or {}
    qs = visible(Company.objects.all(), user).select_related("owner")
    if filters.get("q"):
        tsquery = prefix_tsquery(filters["q"])
        qs = qs.filter(search_vector=tsquery) if tsquery is not None else qs.none()
    if filters.get("industry"):
        qs = qs.filter(industry=filters["industry"])
    return qs


def company_get(*, user: User, pk: int) -> Company:
    company = visible(Company.objects.all(), user).select_related("owner", "team").filter(pk=pk).first()
    if company is None:
        raise NotFound("No such company.")
    return company


def company_contacts(*, user: User, company: Company) -> QuerySet[Contact]:
    return visible(company.contacts.all(), user).select_related("owner").order_by("last_name", "first_name")
