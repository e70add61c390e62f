"""Pages: relationships, introductions, life events, consent, custom fields, contact create/edit.

Views parse input and call selectors and services; the contact page's profile section is rendered from
:func:`profile_context`, both in the full page (through the ``contact_profile`` template tag) and in the htmx
partials these views return.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path
from django.views.decorators.http import require_POST

from accounts.models import User
from contacts import selectors, services
from contacts.customfields import active_definitions
from contacts.forms import ConsentForm, ContactForm, LifeEventForm, RelationshipForm
from contacts.models import Contact, CustomFieldDefinition
from contacts.selectors.consent import contact_consents
from contacts.selectors.life_events import contact_life_events, life_event_list
from contacts.selectors.relationships import (
    contact_relationships,
    contact_resolve,
    introduction_paths,
    relationship_list,
)
from contacts.services.consent import consent_set
from contacts.services.life_events import life_event_create, life_event_delete
from contacts.services.relationships import relationship_create, relationship_delete
from crm.errors import DomainError


def _contact_or_404(user: User, pk: int) -> Contact:
    return selectors.contact_get(user=user, pk=pk)


def _error_fields(exc: ValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return {key: list(messages) for key, messages in exc.message_dict.items()}
    return {"__all__": list(exc.messages)}


def _custom_values(contact: Contact, definitions: list[CustomFieldDefinition]) -> list[dict[str, Any]]:
    values = contact.custom_fields or {}
    rows = []
    for definition in definitions:
        value = values.get(definition.key)
        if isinstance(value, bool):
            value = "Yes" if value else "No"
        rows.append({"definition": definition, "value": value})
    return rows


def profile_context(user: User, contact: Contact, **forms: Any) -> dict[str, Any]:
    """Everything the profile section of the contact page shows. Five or six queries, whatever the data."""
    definitions = list(active_definitions().values())
    return {
        "contact": contact,
        "custom_values": _custom_values(contact, definitions),
        "relationships": contact_relationships(user=user, contact=contact),
        "introductions": introduction_paths(user=user, target=contact),
        "life_events": contact_life_events(user=user, contact=contact),
        "consents": contact_consents(user=user, contact=contact),
        "relationship_form": forms.get("relationship_form") or RelationshipForm(),
        "life_event_form": forms.get("life_event_form") or LifeEventForm(),
        "consent_form": forms.get("consent_form") or ConsentForm(),
    }


def _partial(request: HttpRequest, contact: Contact, template: str, **forms: Any) -> HttpResponse:
    context = {"contact": contact, "profile": profile_context(request.user, contact, **forms)}
    return render(request, f"contacts/{template}", context)


# --- Contact create / edit ----------------------------------------------------------------------------------


def _company_names(user: User) -> list[str]:
    # A datalist of the first names only: the field also accepts any other visible company's exact name.
    return list(selectors.company_list(user=user).order_by("name").values_list("name", flat=True)[:200])


@login_required
def contact_create(request: HttpRequest) -> HttpResponse:
    definitions = list(active_definitions().values())
    form = ContactForm(request.POST or None, user=request.user, definitions=definitions)
    if request.method == "POST" and form.is_valid():
        try:
            contact = services.contact_create(actor=request.user, identities=form.identities(), **form.service_data())
        except DomainError as exc:
            form.add_service_errors(exc.fields or {"__all__": [exc.message]})
        except ValidationError as exc:
            form.add_service_errors(_error_fields(exc))
        else:
            messages.success(request, f"Contact {contact.display_name} created.")
            return redirect("contacts:detail", pk=contact.pk)
    context = {"form": form, "company_names": _company_names(request.user), "page_title": "New contact"}
    return render(request, "contacts/profile_contact_form.html", context, status=400 if form.errors else 200)


@login_required
def contact_edit(request: HttpRequest, pk: int) -> HttpResponse:
    contact = _contact_or_404(request.user, pk)
    definitions = list(active_definitions().values())
    form = ContactForm(request.POST or None, user=request.user, definitions=definitions, instance=contact)
    if request.method == "POST" and form.is_valid():
        try:
            services.contact_update(contact=contact, actor=request.user, **form.service_data())
        except DomainError as exc:
            form.add_service_errors(exc.fields or {"__all__": [exc.message]})
        except ValidationError as exc:
            form.add_service_errors(_error_fields(exc))
        else:
            messages.success(request, f"Contact {contact.display_name} saved.")
            return redirect("contacts:detail", pk=contact.pk)
        # contact_update ran in a rolled-back transaction but changed the in-memory row; show the stored one.
        contact = _contact_or_404(request.user, pk)
    context = {
        "form": form, "contact": contact, "company_names": _company_names(request.user),
        "page_title": f"Edit {contact.display_name}",
    }  # fmt: skip
    return render(request, "contacts/profile_contact_form.html", context, status=400 if form.errors else 200)


# --- Relationships ------------------------------------------------------------------------------------------


@login_required
@require_POST
def relationship_add(request: HttpRequest, pk: int) -> HttpResponse:
    contact = _contact_or_404(request.user, pk)
    form = RelationshipForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            other = contact_resolve(user=request.user, text=data["other"])
            ends = (contact, other) if data["direction"] == "out" else (other, contact)
            relationship_create(
                actor=request.user, from_contact=ends[0], to_contact=ends[1], kind=data["kind"],
                strength=data["strength"], notes=data["notes"],
            )  # fmt: skip
        except DomainError as exc:
            form.add_error("other", exc.message)
        except ValidationError as exc:
            for key, errs in _error_fields(exc).items():
                form.add_error(key if key in form.fields else None, errs)
        else:
            messages.success(request, f"Linked {ends[0].display_name} and {ends[1].display_name}.")
            if not request.htmx:
                return redirect("contacts:detail", pk=pk)
            return _partial(request, contact, "_profile_relationships.html")
    if not request.htmx:
        messages.error(request, "The link was not added: " + "; ".join(e for es in form.errors.values() for e in es))
        return redirect("contacts:detail", pk=pk)
    return _partial(request, contact, "_profile_relationships.html", relationship_form=form)


@login_required
@require_POST
def relationship_remove(request: HttpRequest, pk: int, rel_pk: int) -> HttpResponse:
    contact = _contact_or_404(request.user, pk)
    relationship = relationship_list(user=request.user, contact_id=contact.pk).filter(pk=rel_pk).first()
    if relationship is None:
        raise Http404("No such relationship.")
    relationship_delete(relationship=relationship, actor=request.user)
    messages.success(request, "Link removed.")
    if request.htmx:
        return _partial(request, contact, "_profile_relationships.html")
    return redirect("contacts:detail", pk=pk)


# --- Life events --------------------------------------------------------------------------------------------


@login_required
@require_POST
def life_event_add(request: HttpRequest, pk: int) -> HttpResponse:
    contact = _contact_or_404(request.user, pk)
    form = LifeEventForm(request.POST)
    if form.is_valid():
        try:
            event = life_event_create(contact=contact, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            for key, errs in _error_fields(exc).items():
                form.add_error(key if key in form.fields else None, errs)
        else:
            messages.success(request, f"Life event “{event.title or event.get_kind_display()}” added.")
            if not request.htmx:
                return redirect("contacts:detail", pk=pk)
            return _partial(request, contact, "_profile_life_events.html")
    if not request.htmx:
        messages.error(
            request, "The life event was not added: " + "; ".join(e for es in form.errors.values() for e in es)
        )
        return redirect("contacts:detail", pk=pk)
    return _partial(request, contact, "_profile_life_events.html", life_event_form=form)


@login_required
@require_POST
def life_event_remove(request: HttpRequest, pk: int, event_pk: int) -> HttpResponse:
    contact = _contact_or_404(request.user, pk)
    event = life_event_list(user=request.user, contact_id=contact.pk).filter(pk=event_pk).first()
    if event is None:
        raise Http404("No such life event.")
    life_event_delete(event=event, actor=request.user)
    messages.success(request, "Life event deleted.")
    if request.htmx:
        return _partial(request, contact, "_profile_life_events.html")
    return redirect("contacts:detail", pk=pk)


# --- Consent ------------------------------------------------------------------------------------------------


@login_required
@require_POST
def consent_update(request: HttpRequest, pk: int) -> HttpResponse:
    contact = _contact_or_404(request.user, pk)
    form = ConsentForm(request.POST)
    if form.is_valid():
        consent = consent_set(contact=contact, actor=request.user, **form.cleaned_data)
        messages.success(
            request, f"{consent.get_channel_display()} consent set to {consent.get_status_display().lower()}."
        )
        if not request.htmx:
            return redirect("contacts:detail", pk=pk)
        return _partial(request, contact, "_profile_consent.html")
    if not request.htmx:
        messages.error(request, "Consent was not saved: " + "; ".join(e for es in form.errors.values() for e in es))
        return redirect("contacts:detail", pk=pk)
    return _partial(request, contact, "_profile_consent.html", consent_form=form)


@login_required
@require_POST
def do_not_contact_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    contact = _contact_or_404(request.user, pk)
    value = request.POST.get("do_not_contact") == "on"
    services.contact_update(contact=contact, actor=request.user, do_not_contact=value)
    if value:
        messages.success(request, f"{contact.display_name} is now marked do-not-contact.")
    else:
        messages.success(request, f"{contact.display_name} may be contacted again (channel consent still applies).")
    return redirect("contacts:detail", pk=pk)


# Included by contacts/urls.py under the "contacts" namespace.
urlpatterns: list[URLPattern] = [
    path("contacts/new/", contact_create, name="create"),
    path("contacts/<int:pk>/edit/", contact_edit, name="edit"),
    path("contacts/<int:pk>/relationships/", relationship_add, name="relationship_add"),
    path("contacts/<int:pk>/relationships/<int:rel_pk>/delete/", relationship_remove, name="relationship_delete"),
    path("contacts/<int:pk>/life-events/", life_event_add, name="life_event_add"),
    path("contacts/<int:pk>/life-events/<int:event_pk>/delete/", life_event_remove, name="life_event_delete"),
    path("contacts/<int:pk>/consent/", consent_update, name="consent_update"),
    path("contacts/<int:pk>/do-not-contact/", do_not_contact_toggle, name="do_not_contact"),
]
