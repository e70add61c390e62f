"""The one search box: contacts and companies the user may see, by name, e-mail, phone, handle or company.

Contacts come from contacts.selectors.contact_search_ids (GIN tsvector prefix query + btree prefix lookups on
normalized identities); companies from company_list's tsvector over name and domains. A constant number of
queries whatever the result size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Prefetch

from accounts.models import User
from accounts.selectors import visible
from contacts.models import Company, Contact, ContactIdentity
from contacts.selectors import company_list, contact_search_ids

MAX_QUERY_LENGTH = 200


@dataclass(frozen=True)
class SearchResults:
    query: str
    contacts: list[Contact] = field(default_factory=list)
    companies: list[Company] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.contacts and not self.companies


def trigram_available() -> bool:
    """pg_trgm is optional (the embedded Postgres has no extensions); cached per process once looked up."""
    global _TRGM
    if _TRGM is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
            _TRGM = cursor.fetchone() is not None
    return _TRGM


_TRGM: bool | None = None


def global_search(*, user: User, query: str, limit: int = 20) -> SearchResults:
    """Contacts (with company and primary e-mail prefetched) and companies matching ``query``, best first."""
    query = query.replace("\x00", "").strip()[:MAX_QUERY_LENGTH]
    if not query:
        return SearchResults(query="")
    ids = contact_search_ids(user=user, query=query, limit=limit)
    contacts: list[Contact] = []
    if ids:
        emails = ContactIdentity.objects.filter(kind=ContactIdentity.Kind.EMAIL).order_by("-is_primary", "id")
        by_id = {
            c.pk: c
            for c in visible(Contact.objects.filter(pk__in=ids), user)
            .select_related("company")
            .prefetch_related(Prefetch("identities", queryset=emails, to_attr="emails"))
        }
        contacts = [by_id[pk] for pk in ids if pk in by_id]
    companies = list(company_list(user=user, filters={"q": query}).order_by("name", "id")[:limit])
    if not companies and trigram_available() and len(query) >= 3:
        # Substring fallback only where the extension exists; everything above works without it.
        companies = list(
            visible(Company.objects.filter(name__icontains=query), user)
            .select_related("owner")
            .order_by("name")[:limit]
        )
    return SearchResults(query=query, contacts=contacts, companies=companies)
