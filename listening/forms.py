"""Forms of the Listening pages. They shape the input only: listening.services decides what a valid rule or source
is, and its DomainError fields are put back on the matching form field by :func:`crm.forms.add_service_errors`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms

from accounts.models import Team, User, Visibility
from activities.models import Kind as ActivityKind
from listening.models import ListeningRule, ListeningSource, Mention
from listening.selectors import MentionFilters
from threads.models import Channel, ChannelAccount

# Posts from listening sources carry channels that threads does not have (a blog, a news site, the open web).
POST_CHANNELS = [("blog", "Blog"), ("news", "News"), ("web", "Web")]
FEED_CHANNELS = [*Channel.choices, *POST_CHANNELS]
CHANNEL_LABELS = dict(FEED_CHANNELS)

RULE_ACTION_FIELDS = (
    "alert_in_app", "alert_cooldown_minutes", "alert_email_digest", "activity_for", "activity_kind",
    "activity_title", "activity_cooldown_minutes", "tag", "spike_alerts", "spike_k", "spike_min_count",
)  # fmt: skip


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs, format="%Y-%m-%d")


class RuleForm(forms.Form):
    """Create or edit a listening rule. The query textarea drives the live dry-run preview (htmx)."""

    name = forms.CharField(max_length=200)
    query = forms.CharField(
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "autocomplete": "off", "class": "query-input"}),
        help_text='Words and "exact phrases" with AND, OR, NOT, parentheses, NEAR/5, prefix* and filters such as '
        "sentiment:negative, lang:de, channel:twitter.",
    )
    description = forms.CharField(required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 2}))
    active = forms.BooleanField(required=False, initial=True, help_text="Inactive rules match nothing.")
    include_messages = forms.BooleanField(
        required=False, initial=True, label="Messages in the inbox", help_text="E-mail, SMS, calls … ingested here."
    )
    include_posts = forms.BooleanField(
        required=False, initial=True, label="Public posts", help_text="Posts fetched from listening sources."
    )
    channels = forms.MultipleChoiceField(
        required=False, choices=FEED_CHANNELS, widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every channel.",
    )  # fmt: skip
    source_ids = forms.TypedMultipleChoiceField(
        required=False, coerce=int, label="Sources", widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every source you can see.",
    )  # fmt: skip
    alert_in_app = forms.BooleanField(required=False, initial=True, label="Alert me in the app")
    alert_cooldown_minutes = forms.IntegerField(
        min_value=0, max_value=525_600, initial=60, label="Alert at most every (minutes)", help_text="0: every match."
    )
    alert_email_digest = forms.BooleanField(required=False, label="E-mail a daily digest")
    activity_for = forms.ChoiceField(
        required=False, choices=ListeningRule.ActivityFor.choices, label="Create an activity for"
    )
    activity_kind = forms.ChoiceField(
        required=False, choices=ActivityKind.choices, initial=ActivityKind.TASK, label="Activity kind"
    )
    activity_title = forms.CharField(
        required=False, max_length=200, label="Activity title", help_text="Empty: the rule's name."
    )
    activity_cooldown_minutes = forms.IntegerField(
        required=False, min_value=0, max_value=525_600, initial=1440,
        label="At most one activity per contact every (minutes)",
    )  # fmt: skip
    tag = forms.CharField(required=False, max_length=64, label="Tag the contact with")
    spike_alerts = forms.BooleanField(required=False, initial=True, label="Alert on spikes")
    spike_k = forms.FloatField(
        min_value=0.1, max_value=50, initial=3.0, label="Sensitivity (standard deviations)",
        help_text="A spike is a last-24-hours count above the 7-day daily mean plus this many standard deviations.",
    )  # fmt: skip
    spike_min_count = forms.IntegerField(
        min_value=1, max_value=1_000_000, initial=5, label="Minimum mentions for a spike"
    )
    visibility = forms.ChoiceField(choices=Visibility.choices, initial=Visibility.TEAM, label="Visible to")
    team = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)

    def __init__(
        self, *args: Any, user: User, sources: list[ListeningSource], teams: list[Team],
        instance: ListeningRule | None = None, read_only: bool = False, **kwargs: Any,
    ) -> None:  # fmt: skip
        if instance is not None and "initial" not in kwargs:
            kwargs["initial"] = self.initial_for(instance)
        super().__init__(*args, **kwargs)
        self.user = user
        self.instance = instance
        self.teams = {team.pk: team for team in teams}
        if instance is not None and instance.team_id and instance.team_id not in self.teams and instance.team:
            self.teams[instance.team_id] = instance.team  # a manager editing a rule of a team they are not in
        self.fields["team"].choices = [("", "No team")] + [(pk, str(team)) for pk, team in self.teams.items()]
        if instance is None and teams and "team" not in self.initial:
            self.initial["team"] = teams[0].pk
        self.fields["source_ids"].choices = [(s.pk, f"{s.name} ({s.get_kind_display()})") for s in sources]
        if read_only:
            for field in self.fields.values():
                field.disabled = True

    @staticmethod
    def initial_for(rule: ListeningRule) -> dict[str, Any]:
        initial: dict[str, Any] = {
            name: getattr(rule, name)
            for name in ("name", "query", "description", "active", "include_messages", "include_posts", "channels")
        }
        initial.update({name: getattr(rule, name) for name in RULE_ACTION_FIELDS})
        initial["source_ids"] = [s.pk for s in rule.sources.all()]
        initial["visibility"] = rule.visibility
        initial["team"] = rule.team_id
        return initial

    def clean_name(self) -> str:
        return self.cleaned_data["name"].strip()

    def clean_tag(self) -> str:
        return self.cleaned_data.get("tag", "").strip()

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("activity_for") == "" and data.get("activity_title"):
            self.add_error("activity_for", "Choose who gets the activity, or leave the title empty.")
        # Greyed out (and so not submitted) while no activity is wanted: keep the defaults then.
        data["activity_kind"] = data.get("activity_kind") or ActivityKind.TASK
        if data.get("activity_cooldown_minutes") is None:
            data["activity_cooldown_minutes"] = 1440
        return data

    def service_data(self) -> dict[str, Any]:
        """The ``data`` of rule_create / rule_update."""
        data = self.cleaned_data
        result = {
            name: data[name]
            for name in ("name", "query", "description", "active", "include_messages", "include_posts", "channels")
        }
        result.update({name: data[name] for name in RULE_ACTION_FIELDS})
        result["source_ids"] = list(data["source_ids"])
        result["visibility"] = data["visibility"]
        result["team"] = self.teams.get(data["team"]) if data.get("team") else None
        return result


class DryRunForm(forms.Form):
    """What the live preview needs from the editor form (the rest of the editor's fields are ignored)."""

    query = forms.CharField(required=False, max_length=4000, strip=False)
    channels = forms.MultipleChoiceField(required=False, choices=FEED_CHANNELS)
    include_messages = forms.BooleanField(required=False)
    include_posts = forms.BooleanField(required=False)


class MentionFilterForm(forms.Form):
    rule = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    sentiment = forms.ChoiceField(required=False, choices=[("", "Any sentiment"), *Mention.Sentiment.choices])
    channel = forms.ChoiceField(required=False, choices=[("", "Any channel"), *FEED_CHANNELS])
    contact = forms.CharField(required=False, max_length=20, label="Author")
    since = forms.DateField(required=False, label="From", widget=DateInput())
    until = forms.DateField(required=False, label="To", widget=DateInput())
    q = forms.CharField(required=False, max_length=200, label="Text")

    CONTACT_CHOICES = [("", "Anyone"), ("known", "Known contacts"), ("unknown", "Unknown authors")]

    def __init__(self, *args: Any, rules: list[ListeningRule], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["rule"].choices = [("", "Any rule")] + [(rule.pk, rule.name) for rule in rules]

    @property
    def contact_id(self) -> str:
        """A contact the feed was opened for (from the contact's page), shown as its own choice."""
        value = str(self.data.get("contact") or "").strip()
        return value if value.isdigit() else ""

    def clean_contact(self) -> str:
        value = self.cleaned_data.get("contact", "").strip()
        if value in ("", "known", "unknown") or value.isdigit():
            return value
        raise forms.ValidationError("Choose known or unknown authors.")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date.")
        return data

    def filters(self) -> MentionFilters:
        self.is_valid()  # an invalid field is dropped; the valid ones still filter
        data = getattr(self, "cleaned_data", {})
        since: dt.date | None = data.get("since")
        until: dt.date | None = data.get("until")
        return MentionFilters(
            rule_id=data.get("rule"), sentiment=data.get("sentiment", ""), channel=data.get("channel", ""),
            contact=data.get("contact", ""), since=since, until=until, q=data.get("q", "").strip(),
        )  # fmt: skip


class SourceForm(forms.Form):
    """A listening source. Which fields matter depends on ``kind``: a feed has a URL, a webhook a slug, a search
    or page feed runs through a connected channel account of the matching network."""

    ACCOUNT_KINDS = {
        ListeningSource.Kind.TWITTER_SEARCH: ChannelAccount.Kind.TWITTER,
        ListeningSource.Kind.FACEBOOK_PAGE: ChannelAccount.Kind.FACEBOOK,
    }

    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=ListeningSource.Kind.choices)
    slug = forms.SlugField(
        required=False, max_length=80,
        help_text="Names the source in its webhook address. Empty: made from the name.",
    )  # fmt: skip
    url = forms.URLField(required=False, max_length=2000, label="Feed address", assume_scheme="https")
    channel_account = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="Through account")
    search_query = forms.CharField(
        required=False, max_length=512, label="Search",
        help_text="Empty: built from the terms of the rules that use this source.",
    )  # fmt: skip
    page_id = forms.CharField(required=False, max_length=64, label="Page id")
    fetch_interval_minutes = forms.IntegerField(
        min_value=1, max_value=24 * 60, initial=15, label="Fetch every (minutes)"
    )
    status = forms.ChoiceField(
        choices=[(ListeningSource.Status.ACTIVE, "Active"), (ListeningSource.Status.PAUSED, "Paused")],
        initial=ListeningSource.Status.ACTIVE,
    )
    visibility = forms.ChoiceField(choices=Visibility.choices, initial=Visibility.TEAM, label="Visible to")
    team = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)

    def __init__(
        self, *args: Any, accounts: list[ChannelAccount], teams: list[Team],
        instance: ListeningSource | None = None, **kwargs: Any,
    ) -> None:  # fmt: skip
        if instance is not None and "initial" not in kwargs:
            kwargs["initial"] = self.initial_for(instance)
        super().__init__(*args, **kwargs)
        self.instance = instance
        self.accounts = {account.pk: account for account in accounts}
        self.teams = {team.pk: team for team in teams}
        if instance is not None and instance.team_id and instance.team_id not in self.teams and instance.team:
            self.teams[instance.team_id] = instance.team
        self.fields["team"].choices = [("", "No team")] + [(pk, str(team)) for pk, team in self.teams.items()]
        if instance is None and teams and "team" not in self.initial:
            self.initial["team"] = teams[0].pk
        self.fields["channel_account"].choices = [("", "—")] + [
            (a.pk, f"{a.name} ({a.get_kind_display()})") for a in accounts
        ]
        if instance is not None:
            # A source keeps its kind and its webhook address: senders are configured with them.
            self.fields["kind"].disabled = True
            self.fields["slug"].disabled = True
            if instance.channel_account_id and instance.channel_account_id not in self.accounts:
                account = instance.channel_account
                self.accounts[account.pk] = account
                self.fields["channel_account"].choices.append((account.pk, f"{account.name} ({account.kind})"))

    @staticmethod
    def initial_for(source: ListeningSource) -> dict[str, Any]:
        config = source.config or {}
        return {
            "name": source.name, "kind": source.kind, "slug": source.slug, "url": source.url,
            "channel_account": source.channel_account_id, "search_query": config.get("query", ""),
            "page_id": config.get("page_id", ""), "fetch_interval_minutes": max(1, source.fetch_interval_s // 60),
            "status": source.status if source.status != ListeningSource.Status.FAILING else "active",
            "visibility": source.visibility, "team": source.team_id,
        }  # fmt: skip

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        kind = data.get("kind")
        Kind = ListeningSource.Kind
        if kind == Kind.RSS and not data.get("url") and "url" not in self.errors:
            self.add_error("url", "Enter the address of the RSS or Atom feed.")
        if kind in self.ACCOUNT_KINDS:
            account = self.accounts.get(data.get("channel_account") or 0)
            wanted = self.ACCOUNT_KINDS[kind]
            if account is None:
                self.add_error("channel_account", f"Choose a connected {wanted.label} account.")
            elif account.kind != wanted:
                self.add_error("channel_account", f"{account.name} is not a {wanted.label} account.")
            data["channel_account_obj"] = account
        if kind == Kind.FACEBOOK_PAGE and not data.get("page_id", "").strip() and data.get("channel_account"):
            account = self.accounts.get(data["channel_account"])
            # The connected page itself is the default: its id is the account's address.
            data["page_id"] = account.address if account else ""
        return data

    def service_data(self) -> dict[str, Any]:
        """The ``data`` of source_create / source_update."""
        data = self.cleaned_data
        kind = data["kind"]
        config: dict[str, Any] = dict(self.instance.config or {}) if self.instance is not None else {}
        if kind == ListeningSource.Kind.TWITTER_SEARCH:
            config["query"] = data.get("search_query", "").strip()
        if kind == ListeningSource.Kind.FACEBOOK_PAGE:
            config["page_id"] = data.get("page_id", "").strip()
        result: dict[str, Any] = {
            "name": data["name"].strip(), "url": data.get("url", "") if kind == ListeningSource.Kind.RSS else "",
            "channel_account": data.get("channel_account_obj"), "config": config,
            "fetch_interval_s": data["fetch_interval_minutes"] * 60, "status": data["status"],
            "visibility": data["visibility"], "team": self.teams.get(data["team"]) if data.get("team") else None,
        }  # fmt: skip
        if self.instance is None:
            result["kind"] = kind
            result["slug"] = data.get("slug", "")
        return result
