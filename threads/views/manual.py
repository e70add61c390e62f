"""Log a touch (call, meeting, in person, voicemail, note) from the contact page: one click opens this compact
form with the call channel and "now" preselected, the second saves it and returns to the contact."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from contacts.selectors import contact_get
from crm.errors import DomainError
from crm.forms import add_service_errors
from threads.models import MANUAL_CHANNELS, Direction
from threads.services.manual import MAX_DURATION_MINUTES, message_log_manual

# Suggestions only: an outcome is free text, the same words activities use for completed calls.
OUTCOME_SUGGESTIONS = ["reached", "no_answer", "left_voicemail", "wrong_number", "interested", "not_interested"]


class ManualLogForm(forms.Form):
    channel = forms.ChoiceField(
        choices=[(c.value, c.label) for c in MANUAL_CHANNELS], initial="call", widget=forms.RadioSelect
    )
    direction = forms.ChoiceField(
        choices=[(Direction.OUTBOUND, "We reached out"), (Direction.INBOUND, "They reached out")],
        initial=Direction.OUTBOUND, widget=forms.RadioSelect,
    )  # fmt: skip
    subject = forms.CharField(max_length=300, required=False)
    body = forms.CharField(required=False, label="Notes", widget=forms.Textarea(attrs={"rows": 4}))
    sent_at = forms.DateTimeField(
        label="When",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    duration_minutes = forms.IntegerField(
        required=False, min_value=0, max_value=MAX_DURATION_MINUTES, label="Duration (minutes)"
    )
    outcome = forms.CharField(max_length=64, required=False, widget=forms.TextInput(attrs={"list": "manual-outcomes"}))


@login_required
def log_touch(request: HttpRequest, contact_pk: int) -> HttpResponse:
    contact = contact_get(user=request.user, pk=contact_pk)
    now = timezone.localtime().replace(second=0, microsecond=0)
    form = ManualLogForm(request.POST or None, initial={"sent_at": now})
    if request.method == "POST" and form.is_valid():
        try:
            message = message_log_manual(actor=request.user, contact=contact, **form.cleaned_data)
        except DomainError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"{message.get_channel_display()} logged with {contact.display_name}.")
            return redirect("contacts:detail", pk=contact.pk)
    return render(
        request, "threads/manual_log.html",
        {"form": form, "contact": contact, "outcomes": OUTCOME_SUGGESTIONS,
         "page_title": f"Log a touch with {contact.display_name}"},
        status=400 if form.errors else 200,
    )  # fmt: skip
