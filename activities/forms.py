from __future__ import annotations

from django import forms

from accounts.models import User
from activities.models import Activity, Kind

OUTCOME_CHOICES = [("", "—"), *Activity.Outcome.choices]


class ActivityForm(forms.Form):
    kind = forms.ChoiceField(choices=Kind.choices, initial=Kind.CALL)
    subject = forms.CharField(max_length=300)
    contact = forms.IntegerField(required=False, min_value=1, label="Contact id", widget=forms.HiddenInput)
    owner = forms.ModelChoiceField(queryset=User.objects.none(), required=False, label="Assigned to")
    due_at = forms.DateTimeField(
        required=False,
        label="Due",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    duration_minutes = forms.IntegerField(required=False, min_value=1, max_value=24 * 60, label="Duration (minutes)")
    location = forms.CharField(max_length=300, required=False)
    priority = forms.ChoiceField(choices=Activity.Priority.choices, initial=Activity.Priority.NORMAL)
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args: object, assignable: object = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if assignable is not None:
            self.fields["owner"].queryset = assignable  # type: ignore[attr-defined]


class CompleteForm(forms.Form):
    outcome = forms.ChoiceField(choices=OUTCOME_CHOICES, required=False)
    custom_outcome = forms.CharField(max_length=64, required=False, label="Or another outcome")
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        data["outcome"] = (data.get("custom_outcome") or data.get("outcome") or "").strip()
        return data
