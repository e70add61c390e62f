from __future__ import annotations

import factory

from accounts.models import Visibility
from contacts.models import Company, Contact, ContactIdentity
from contacts.services import company_search_refresh, contact_search_refresh


class CompanyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Company
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Company {n}")
    domains = factory.LazyAttribute(lambda c: [c.name.lower().replace(" ", "") + ".example"])
    visibility = Visibility.TEAM

    @factory.post_generation
    def index(obj: Company, create: bool, extracted: object, **kwargs: object) -> None:
        if create:
            company_search_refresh(company_ids=[obj.pk])


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact
        skip_postgeneration_save = True

    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    visibility = Visibility.TEAM

    @factory.post_generation
    def index(obj: Contact, create: bool, extracted: object, **kwargs: object) -> None:
        if create:
            contact_search_refresh(contact_ids=[obj.pk])


class IdentityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ContactIdentity

    contact = factory.SubFactory(ContactFactory)
    kind = ContactIdentity.Kind.EMAIL
    value = factory.Sequence(lambda n: f"person{n}@example.com")
    normalized = factory.LazyAttribute(lambda i: i.value.lower())
