"""Browser pages of the Inbox: the thread list, the unmatched queue, a thread with its actions and reply form.

Thin: parse input, call a selector or a service, render or redirect. Every action is a plain POST that redirects
(so it works without JavaScript); the status card also answers htmx requests in place.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.selectors import user_list
from contacts.selectors import contact_get, contact_list
from crm.errors import DomainError, NotFound
from crm.forms import add_service_errors
from threads import selectors
from threads.models import Channel, Message, Thread
from threads.selectors import latest_inbound
from threads.services import conversations
from threads.services.send import ACCOUNT_CHANNEL, message_send
from threads.views.accounts import (  # noqa: F401  (re-exported for threads.urls)
    account_detail,
    account_list,
    account_pause,
    account_resume,
    account_retry,
    account_sync,
)
from threads.views.forms import AssignForm, ReplyForm, SplitForm, TopicMoveForm

PAGE_SIZE = 50


def _flag(value: str | None) -> bool:
    return value in ("1", "true", "on", "yes")


def _error(request: HttpRequest, exc: DomainError) -> None:
    messages.error(request, exc.message)


# --- Inbox ----------------------------------------------------------------------------------------------------


@login_required
def index(request: HttpRequest) -> HttpResponse:
    params = request.GET
    filters = {
        "channel": params.get("channel", "") if params.get("channel", "") in Channel.values else "",
        "assignee": params.get("assignee", ""),
        "unread": _flag(params.get("unread")),
        "waiting": _flag(params.get("waiting")),
        "status": params.get("status", "") if params.get("status", "") in Thread.Status.values else "",
    }
    if filters["assignee"] not in ("", "me", "none") and not filters["assignee"].isdigit():
        filters["assignee"] = ""
    try:
        page = selectors.inbox_threads(user=request.user, cursor=params.get("cursor"), limit=PAGE_SIZE, **filters)
    except DomainError as exc:
        _error(request, exc)
        return redirect("threads:index")
    query = request.GET.copy()
    query.pop("cursor", None)
    context = {
        "threads": page.items, "next_cursor": page.next, "filters": filters, "query": query.urlencode(),
        "channels": Channel.choices, "statuses": Thread.Status.choices,
        "people": list(user_list(actor=request.user).order_by("username")), "page_title": "Inbox",
    }  # fmt: skip
    if request.htmx and params.get("cursor"):
        return render(request, "threads/_thread_rows.html", context)
    return render(request, "threads/index.html", context)


@login_required
def unmatched(request: HttpRequest) -> HttpResponse:
    try:
        page = selectors.unmatched_messages(user=request.user, cursor=request.GET.get("cursor"), limit=PAGE_SIZE)
    except DomainError as exc:
        _error(request, exc)
        return redirect("threads:unmatched")
    return render(
        request,
        "threads/unmatched.html",
        {"items": page.items, "next_cursor": page.next, "page_title": "Unmatched messages"},
    )


def _find_contact(request: HttpRequest, text: str):  # type: ignore[no-untyped-def]
    """A contact by id, or the one visible contact a search finds; a DomainError says what to do otherwise."""
    text = text.strip()
    if not text:
        raise DomainError("Say which contact wrote it: a name, an e-mail or the contact's number.")
    if text.lstrip("#").isdigit():
        return contact_get(user=request.user, pk=int(text.lstrip("#")))
    found = list(contact_list(user=request.user, filters={"q": text})[:6])
    if not found:
        raise DomainError(f"No contact matches “{text}”.")
    if len(found) > 1:
        names = ", ".join(f"{c.display_name} (#{c.pk})" for c in found[:5])
        raise DomainError(f"Several contacts match “{text}”: {names}. Enter the number of the right one.")
    return found[0]


@login_required
@require_POST
def unmatched_assign(request: HttpRequest, pk: int) -> HttpResponse:
    message = selectors.message_get(user=request.user, pk=pk)
    try:
        contact = _find_contact(request, request.POST.get("contact", ""))
        thread = conversations.unmatched_assign(actor=request.user, message=message, contact=contact)
    except NotFound:
        messages.error(request, "No such contact.")
    except DomainError as exc:
        _error(request, exc)
    else:
        messages.success(request, f"Matched to {contact.display_name}; their messages moved to the conversation.")
        return redirect("threads:detail", pk=thread.pk)
    return redirect("threads:unmatched")


# --- A thread -------------------------------------------------------------------------------------------------


def _detail_context(request: HttpRequest, thread: Thread, reply_form: ReplyForm | None = None) -> dict:
    page = selectors.thread_messages(user=request.user, thread=thread, before=request.GET.get("before"), limit=50)
    options = selectors.reply_options(user=request.user, thread=thread)
    people = list(user_list(actor=request.user).order_by("username"))
    default = options.default_account
    return {
        "blocked_reasons": {str(pk): reason for pk, reason in options.blocked.items()},
        "default_blocked": options.blocked.get(default.pk, "") if default else "",
        "thread": thread, "contact": thread.contact, "messages_page": page.items, "older_cursor": page.next,
        "options": options, "reply_form": reply_form or ReplyForm(options=options),
        "assign_form": AssignForm(people=people, initial={"assignee": thread.assignee_id}),
        "other_threads": selectors.topic_threads(thread=thread), "move_form": TopicMoveForm(),
        "page_title": f"{thread.contact.display_name}{' · ' + thread.topic if thread.topic else ''}",
    }  # fmt: skip


@login_required
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    thread = selectors.thread_get(user=request.user, pk=pk)
    try:
        context = _detail_context(request, thread)
    except DomainError as exc:  # a tampered "older" cursor
        _error(request, exc)
        return redirect("threads:detail", pk=thread.pk)
    conversations.thread_mark_read(thread=thread, user=request.user)
    return render(request, "threads/detail.html", context)


@login_required
def contact_conversation(request: HttpRequest, contact_id: int) -> HttpResponse:
    contact = contact_get(user=request.user, pk=contact_id)
    thread = conversations.thread_main_get_or_create(actor=request.user, contact=contact)
    return redirect("threads:detail", pk=thread.pk)


@login_required
@require_POST
def reply(request: HttpRequest, pk: int) -> HttpResponse:
    thread = selectors.thread_get(user=request.user, pk=pk)
    options = selectors.reply_options(user=request.user, thread=thread)
    form = ReplyForm(request.POST, request.FILES, options=options)
    if form.is_valid():
        account = form.cleaned_data["account_obj"]
        reply_to = latest_inbound(thread=thread, channel=ACCOUNT_CHANNEL.get(account.kind))
        try:
            message = message_send(
                actor=request.user, thread=thread, account=account, to=[form.recipient()],
                body_text=form.cleaned_data["body_text"], subject=form.cleaned_data["subject"],
                cc=form.cleaned_data["cc"], attachments=form.cleaned_data["attachments"], reply_to=reply_to,
                mode=form.cleaned_data["mode"] if account.kind == "twitter" else "",
            )  # fmt: skip
        except DomainError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Reply queued for sending through {account.name}.")
            return redirect(reverse("threads:detail", args=[thread.pk]) + f"#m{message.pk}")
    messages.error(request, "The reply was not sent; see the form.")
    return render(request, "threads/detail.html", _detail_context(request, thread, reply_form=form), status=400)


def _state_response(request: HttpRequest, thread: Thread) -> HttpResponse:
    if request.htmx:
        thread = selectors.thread_get(user=request.user, pk=thread.pk)
        people = list(user_list(actor=request.user).order_by("username"))
        return render(
            request, "threads/_thread_state.html",
            {"thread": thread, "assign_form": AssignForm(people=people, initial={"assignee": thread.assignee_id})},
        )  # fmt: skip
    return redirect("threads:detail", pk=thread.pk)


@login_required
@require_POST
def assign(request: HttpRequest, pk: int) -> HttpResponse:
    thread = selectors.thread_get(user=request.user, pk=pk)
    people = list(user_list(actor=request.user))
    form = AssignForm(request.POST, people=people)
    if not form.is_valid():
        messages.error(request, "Choose someone from the list.")
        return _state_response(request, thread)
    assignee = next((u for u in people if u.pk == form.cleaned_data["assignee"]), None)
    try:
        thread = conversations.thread_assign(thread=thread, actor=request.user, assignee=assignee)
    except DomainError as exc:
        _error(request, exc)
    else:
        messages.success(request, f"Assigned to {assignee}." if assignee else "Unassigned.")
    return _state_response(request, thread)


@login_required
@require_POST
def close(request: HttpRequest, pk: int) -> HttpResponse:
    thread = conversations.thread_close(thread=selectors.thread_get(user=request.user, pk=pk), actor=request.user)
    messages.success(request, "Conversation closed.")
    return _state_response(request, thread)


@login_required
@require_POST
def reopen(request: HttpRequest, pk: int) -> HttpResponse:
    thread = conversations.thread_reopen(thread=selectors.thread_get(user=request.user, pk=pk), actor=request.user)
    messages.success(request, "Conversation reopened.")
    return _state_response(request, thread)


@login_required
@require_POST
def message_move(request: HttpRequest, pk: int) -> HttpResponse:
    message: Message = selectors.message_get(user=request.user, pk=pk)
    form = TopicMoveForm(request.POST)
    form.is_valid()
    try:
        target = conversations.message_move_to_topic(
            actor=request.user, message=message, topic=form.cleaned_data.get("topic", ""),
            whole_conversation=form.cleaned_data.get("whole_conversation", False),
        )  # fmt: skip
    except DomainError as exc:
        _error(request, exc)
        return redirect("threads:detail", pk=message.thread_id) if message.thread_id else redirect("threads:index")
    messages.success(request, f"Moved to “{target.topic or 'Main conversation'}”.")
    return redirect(reverse("threads:detail", args=[target.pk]) + f"#m{message.pk}")


@login_required
@require_POST
def split(request: HttpRequest, pk: int) -> HttpResponse:
    thread = selectors.thread_get(user=request.user, pk=pk)
    form = SplitForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Tick the messages to split off and name the topic.")
        return redirect("threads:detail", pk=thread.pk)
    try:
        target = conversations.thread_split(
            actor=request.user, thread=thread, message_ids=form.cleaned_data["message_ids"],
            topic=form.cleaned_data["topic"],
        )  # fmt: skip
    except DomainError as exc:
        _error(request, exc)
        return redirect("threads:detail", pk=thread.pk)
    count = len(form.cleaned_data["message_ids"])
    messages.success(request, f"{count} message{'s' if count != 1 else ''} moved to “{target.topic}”.")
    return redirect("threads:detail", pk=target.pk)


@login_required
@require_POST
def merge(request: HttpRequest, pk: int) -> HttpResponse:
    source = selectors.thread_get(user=request.user, pk=pk)
    target_id = request.POST.get("target", "")
    if not target_id.isdigit():
        messages.error(request, "Choose the thread to merge with.")
        return redirect("threads:detail", pk=source.pk)
    try:
        target = selectors.thread_get(user=request.user, pk=int(target_id))
        survivor = conversations.thread_merge(actor=request.user, source=source, target=target)
    except DomainError as exc:
        _error(request, exc)
        return redirect("threads:detail", pk=source.pk)
    messages.success(request, f"Merged into “{survivor.topic or 'Main conversation'}”.")
    return redirect("threads:detail", pk=survivor.pk)


@login_required
def attachment(request: HttpRequest, pk: int) -> FileResponse:
    item = selectors.attachment_get(user=request.user, pk=pk)
    if not item.file:
        raise NotFound("This attachment was not kept: " + (item.omitted or "no content."))
    try:
        handle = item.file.open("rb")
    except (OSError, ValidationError):
        raise NotFound("The attachment's file is missing.") from None
    # Always a download, never rendered inline: an HTML or SVG attachment must not run in our origin.
    return FileResponse(handle, as_attachment=True, filename=item.name, content_type=item.content_type)
