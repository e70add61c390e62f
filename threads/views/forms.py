"""Forms of the Inbox pages. They validate shape only; every rule lives in threads.services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile

from contacts.identities import normalize_email
from threads.connectors import AttachmentIn, Party
from threads.selectors import ACCOUNT_IDENTITY_KIND, ReplyOptions
from threads.services.send import MAX_ATTACHMENT_BYTES


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        if not data:
            return []
        items = data if isinstance(data, list | tuple) else [data]
        return [super(MultipleFileField, self).clean(item, initial) for item in items]


class ReplyForm(forms.Form):
    """Answer a thread: which of our accounts sends it, to which of the contact's addresses."""

    account = forms.TypedChoiceField(label="Send from", coerce=int)
    to = forms.ChoiceField(label="To")
    subject = forms.CharField(max_length=998, required=False)
    body_text = forms.CharField(label="Message", widget=forms.Textarea(attrs={"rows": 6}), max_length=200_000)
    cc = forms.CharField(
        label="CC", required=False, max_length=2000, help_text="E-mail only: addresses separated by commas."
    )
    attachments = MultipleFileField(required=False)
    mode = forms.ChoiceField(
        label="On Twitter/X", required=False, choices=[("", "Public reply"), ("dm", "Direct message")],
        help_text="Twitter/X only: answer the tweet in public, or by direct message.",
    )  # fmt: skip

    def __init__(self, *args: Any, options: ReplyOptions, **kwargs: Any) -> None:
        initial = kwargs.setdefault("initial", {})
        if options.default_account is not None:
            initial.setdefault("account", options.default_account.pk)
        if options.default_recipient is not None:
            initial.setdefault("to", options.default_recipient.value)
        initial.setdefault("subject", options.subject)
        super().__init__(*args, **kwargs)
        self.options = options
        self.fields["account"].choices = [(a.pk, f"{a.name} ({a.get_kind_display()})") for a in options.accounts]
        self.fields["to"].choices = [(r.value, r.label) for r in options.recipients]

    def clean_cc(self) -> list[Party]:
        parties = []
        for raw in self.cleaned_data.get("cc", "").replace(";", ",").split(","):
            if raw.strip():
                parties.append(Party("email", normalize_email(raw), "", "cc"))
        return parties

    def clean_attachments(self) -> list[AttachmentIn]:
        files: list[UploadedFile] = self.cleaned_data.get("attachments") or []
        total = sum(f.size or 0 for f in files)
        if total > MAX_ATTACHMENT_BYTES:
            raise ValidationError(f"Attachments may add up to {MAX_ATTACHMENT_BYTES // 2**20} MB.")
        return [
            AttachmentIn(f.name or "attachment", f.content_type or "application/octet-stream", f.read(), f.size or 0)
            for f in files
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        account = next((a for a in self.options.accounts if a.pk == data.get("account")), None)
        to = data.get("to")
        if account is not None and to:
            kind = ACCOUNT_IDENTITY_KIND.get(account.kind)
            if not to.startswith(f"{kind}:"):
                self.add_error("to", f"{account.name} cannot reach this address; choose a {kind} address.")
            if data.get("cc") and account.kind != "email":
                self.add_error("cc", "Only e-mail has CC.")
        data["account_obj"] = account
        return data

    def recipient(self) -> Party:
        kind, _, address = self.cleaned_data["to"].partition(":")
        return Party(kind, address, "", "to")


class AssignForm(forms.Form):
    assignee = forms.TypedChoiceField(label="Assign to", coerce=int, required=False, empty_value=None)

    def __init__(self, *args: Any, people: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assignee"].choices = [("", "Nobody")] + [(u.pk, str(u)) for u in people]


class TopicMoveForm(forms.Form):
    topic = forms.CharField(max_length=200, required=False, help_text="Empty: back to the main conversation.")
    whole_conversation = forms.BooleanField(required=False, label="Move the whole conversation")


class SplitForm(forms.Form):
    topic = forms.CharField(max_length=200)
    message_ids = forms.TypedMultipleChoiceField(coerce=int)

    def __init__(self, *args: Any, message_ids: list[int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Ids are checked against the thread by the service; here only their shape.
        data = args[0] if args else kwargs.get("data")
        submitted = data.getlist("message_ids") if data is not None and hasattr(data, "getlist") else []
        choices = message_ids or [int(v) for v in submitted if str(v).isdigit()]
        self.fields["message_ids"].choices = [(pk, pk) for pk in choices]
