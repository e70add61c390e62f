"""Recorded Graph API exchanges and Meta webhook deliveries for the Facebook connector tests.

The shapes follow Meta's reference: list edges answer ``{"data": [...], "paging": {"cursors": {"before", "after"},
"next"}}`` (no ``next`` on the last page), times are ``2026-03-01T10:15:00+0000``, errors are
``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``, webhook deliveries are
``{"object": "page", "entry": [{"id", "time", "messaging" | "changes"}]}`` signed with ``X-Hub-Signature-256``.
``FakeGraph`` registers them on a ``responses`` mock and checks that every call carried the page token and the
right ``appsecret_proof``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import responses

from accounts.models import Visibility
from tests.threads.factories import ChannelAccountFactory
from threads.models import ChannelAccount

VERSION = "v21.0"
GRAPH = f"https://graph.facebook.com/{VERSION}"
PAGE_ID = "104857600000001"
PAGE_NAME = "Acme Bikes"
TOKEN = "EAAGm0PX4ZCpsBAPageTokenForAcmeBikes"
APP_SECRET = "3f1c0ffee0ddba11d00dfacefeedbeef"
VERIFY_TOKEN = "acme-verify-4242"
PROOF = hmac.new(APP_SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()

ANN_PSID = "6024519847613370"
ANN = "Ann Lindqvist"
DAVID_PSID = "7133829912044551"
DAVID = "דוד כהן"  # right-to-left name
BOB_ID = "5512093318847002"
BOB = "Bob Okafor"


def page_account(world: Any, **overrides: Any) -> ChannelAccount:
    """A connected page, shared with team A, owned by its manager."""
    credentials = overrides.pop("credentials", {"page_access_token": TOKEN})
    fields = {
        "kind": ChannelAccount.Kind.FACEBOOK, "name": "Acme Bikes page", "address": "",
        "config": {"page_id": PAGE_ID, "page_name": PAGE_NAME}, "credentials": json.dumps(credentials),
        "owner": world.ma, "team": world.team_a, "visibility": Visibility.TEAM,
    }  # fmt: skip
    fields.update(overrides)
    return ChannelAccountFactory(**fields)


# --- Graph objects ---------------------------------------------------------------------------------------------


def fb_time(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def ago(**delta: float) -> dt.datetime:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(**delta)).replace(microsecond=0)


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def listing(path: str, data: list[dict[str, Any]], *, after: str | None = None, params: dict[str, Any] | None = None,
            last: bool = True) -> dict[str, Any]:  # fmt: skip
    """One page of a list edge. Unless ``last``, ``paging.next`` points at the page after ``after``'s cursor."""
    cursors = {"before": _cursor(f"{path}:before"), "after": _cursor(f"{path}:{after or 'first'}:after")}
    body: dict[str, Any] = {"data": data, "paging": {"cursors": cursors}}
    if not last:
        query = {"access_token": TOKEN, **(params or {}), "limit": "25", "after": cursors["after"]}
        body["paging"]["next"] = f"{GRAPH}/{path}?{urlencode(query)}"
    return body


def next_after(page: dict[str, Any]) -> str:
    return page["paging"]["cursors"]["after"]


def party(person_id: str, name: str) -> dict[str, str]:
    return {"name": name, "email": f"{person_id}@facebook.com", "id": person_id}


def conversation(conv_id: str, updated: dt.datetime, psid: str, name: str) -> dict[str, Any]:
    return {
        "id": conv_id, "updated_time": fb_time(updated), "link": f"/{PAGE_ID}/inbox/{conv_id[2:]}/",
        "participants": {"data": [party(psid, name), party(PAGE_ID, PAGE_NAME)]},
    }  # fmt: skip


def message(mid: str, created: dt.datetime, *, text: str | None, sender: tuple[str, str],
            to: tuple[str, str], **extra: Any) -> dict[str, Any]:  # fmt: skip
    item: dict[str, Any] = {
        "id": mid,
        "created_time": fb_time(created),
        "from": party(*sender),
        "to": {"data": [party(*to)]},
    }
    if text is not None:
        item["message"] = text
    item.update(extra)
    return item


def post(
    post_id: str, created: dt.datetime, *, updated: dt.datetime | None = None, comments: int = 0
) -> dict[str, Any]:
    return {
        "id": post_id, "created_time": fb_time(created), "updated_time": fb_time(updated or created),
        "permalink_url": f"https://www.facebook.com/{PAGE_ID}/posts/{post_id.split('_')[1]}",
        "comments": {"data": [], "summary": {"order": "chronological", "total_count": comments, "can_comment": True}},
    }  # fmt: skip


def comment(comment_id: str, created: dt.datetime, *, text: str, author: tuple[str, str] | None,
            parent: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:  # fmt: skip
    item: dict[str, Any] = {
        "id": comment_id, "created_time": fb_time(created), "message": text, "is_hidden": False,
        "permalink_url": f"https://www.facebook.com/{PAGE_ID}/posts/1?comment_id={comment_id.split('_')[1]}",
    }  # fmt: skip
    if author is not None:
        item["from"] = {"name": author[1], "id": author[0]}
    if parent is not None:
        item["parent"] = {"created_time": parent["created_time"], "from": parent.get("from"),
                          "message": parent["message"], "id": parent["id"]}  # fmt: skip
    item.update(extra)
    return item


def graph_error(message: str, *, code: int, type_: str = "OAuthException", subcode: int | None = None,
                transient: bool | None = None) -> dict[str, Any]:  # fmt: skip
    error: dict[str, Any] = {"message": message, "type": type_, "code": code, "fbtrace_id": "AxKqgZ9rTnB2Pl0pWm3"}
    if subcode is not None:
        error["error_subcode"] = subcode
    if transient is not None:
        error["is_transient"] = transient
    return {"error": error}


EXPIRED_TOKEN = graph_error(
    "Error validating access token: Session has expired on Tuesday, 24-Nov-26 09:00:00 PST. The current time is "
    "Wednesday, 25-Nov-26 02:13:54 PST.", code=190, subcode=463,
)  # fmt: skip
PAGE_RATE_LIMIT = graph_error(
    "(#32) Page request limit reached", code=32, type_="OAuthException"
)  # fmt: skip
APP_RATE_LIMIT = graph_error("(#4) Application request limit reached", code=4)
CUSTOM_RATE_LIMIT = graph_error("(#613) Calls to this api have exceeded the rate limit.", code=613)
TEMPORARILY_DOWN = graph_error(
    "An unexpected error has occurred. Please retry your request later.", code=2, type_="OAuthException",
    transient=True,
)  # fmt: skip


def buc_usage(minutes: int) -> dict[str, str]:
    """Rate-limit headers as Meta sends them for a Pages business use case."""
    return {
        "X-Business-Use-Case-Usage": json.dumps({
            PAGE_ID: [{"type": "pages", "call_count": 100, "total_cputime": 12, "total_time": 18,
                       "estimated_time_to_regain_access": minutes}],
        }),
        "X-App-Usage": json.dumps({"call_count": 41, "total_time": 9, "total_cputime": 7}),
    }  # fmt: skip


# --- The fake Graph endpoint -----------------------------------------------------------------------------------


def _query(url: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def _form(body: Any) -> dict[str, str]:
    if body is None:
        return {}
    text = body.decode() if isinstance(body, bytes) else str(body)
    return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}


def _params_matcher(expected: dict[str, str | None], *, in_body: bool) -> Any:
    """Every key in ``expected`` has that value (None: must be absent); other parameters are not checked."""

    def match(request: Any) -> tuple[bool, str]:
        got = _form(request.body) if in_body else _query(request.url)
        for key, value in expected.items():
            if value is None and key in got:
                return False, f"{key} present"
            if value is not None and got.get(key) != value:
                return False, f"{key}={got.get(key)!r}, expected {value!r}"
        return True, ""

    return match


class FakeGraph:
    """The Graph API behind ``responses``: register answers per path (and query parameters), then inspect calls."""

    def __init__(self, mock: responses.RequestsMock, *, token: str = TOKEN, proof: str = PROOF) -> None:
        self.mock = mock
        self.token = token
        self.proof = proof

    def get(self, path: str, body: Any = None, *, status: int = 200, headers: dict[str, str] | None = None,
            after: str | None = None, content_type: str = "application/json", **params: str) -> None:  # fmt: skip
        """Answer ``GET /{version}/{path}``; without ``after`` only the first page (no ``after`` parameter) matches."""
        expected: dict[str, str | None] = {"after": after, **params}
        kwargs: dict[str, Any] = {
            "status": status,
            "headers": headers or {},
            "match": [_params_matcher(expected, in_body=False)],
        }
        if isinstance(body, dict):
            kwargs["json"] = body
        else:
            kwargs["body"] = body or ""
            kwargs["content_type"] = content_type
        self.mock.get(f"{GRAPH}/{path}", **kwargs)

    def post(self, path: str, body: dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None,
             **params: str) -> None:  # fmt: skip
        self.mock.post(
            f"{GRAPH}/{path}", json=body, status=status, headers=headers or {},
            match=[_params_matcher(dict(params), in_body=True)],
        )  # fmt: skip

    def fail(self, path: str, exc: Exception) -> None:
        self.mock.get(f"{GRAPH}/{path}", body=exc)

    @property
    def calls(self) -> list[Any]:
        return list(self.mock.calls)

    def paths(self) -> list[str]:
        return [urlsplit(call.request.url).path for call in self.mock.calls]

    def sent(self, index: int = -1) -> dict[str, str]:
        """The parameters of a call: its form body for a POST, else its query."""
        request = self.mock.calls[index].request
        return _form(request.body) if request.method == "POST" else _query(request.url)

    def assert_every_call_proved(self) -> None:
        for call in self.mock.calls:
            request = call.request
            params = {**_query(request.url), **_form(request.body if request.method == "POST" else None)}
            assert params.get("access_token") == self.token, f"{request.method} {request.url}: wrong token"
            assert params.get("appsecret_proof") == self.proof, f"{request.method} {request.url}: wrong proof"
            assert urlsplit(request.url).path.startswith(f"/{VERSION}/"), request.url


# --- Webhook deliveries ----------------------------------------------------------------------------------------


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def delivery(*entries: dict[str, Any]) -> bytes:
    return json.dumps({"object": "page", "entry": list(entries)}, ensure_ascii=False).encode()


def ms(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


def messaging_entry(*events: dict[str, Any], page_id: str = PAGE_ID, time: int | None = None) -> dict[str, Any]:
    return {"id": page_id, "time": time or ms(ago(seconds=1)), "messaging": list(events)}


def inbound_messaging(mid: str, text: str | None, *, psid: str = ANN_PSID, when: dt.datetime | None = None,
                      **message_extra: Any) -> dict[str, Any]:  # fmt: skip
    message_body: dict[str, Any] = {"mid": mid, **message_extra}
    if text is not None:
        message_body["text"] = text
    return {"sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": ms(when or ago(minutes=1)),
            "message": message_body}  # fmt: skip


def echo_messaging(mid: str, text: str, *, psid: str = ANN_PSID, metadata: str | None = None,
                   when: dt.datetime | None = None) -> dict[str, Any]:  # fmt: skip
    message_body: dict[str, Any] = {"is_echo": True, "app_id": 1517776481860111, "mid": mid, "text": text}
    if metadata is not None:
        message_body["metadata"] = metadata
    return {"sender": {"id": PAGE_ID}, "recipient": {"id": psid}, "timestamp": ms(when or ago(seconds=5)),
            "message": message_body}  # fmt: skip


def read_receipt(psid: str = ANN_PSID) -> dict[str, Any]:
    return {"sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": ms(ago(seconds=2)),
            "read": {"watermark": ms(ago(seconds=3))}}  # fmt: skip


def feed_entry(*values: dict[str, Any], page_id: str = PAGE_ID) -> dict[str, Any]:
    return {"id": page_id, "time": int(ago(seconds=1).timestamp()),
            "changes": [{"field": "feed", "value": v} for v in values]}  # fmt: skip


def comment_change(comment_id: str, post_id: str, *, verb: str = "add", text: str = "",
                   author: tuple[str, str] | None = (BOB_ID, BOB), parent_id: str | None = None,
                   when: dt.datetime | None = None) -> dict[str, Any]:  # fmt: skip
    value: dict[str, Any] = {
        "item": "comment", "verb": verb, "comment_id": comment_id, "post_id": post_id,
        "parent_id": parent_id or post_id, "created_time": int((when or ago(minutes=1)).timestamp()),
        "post": {"status_type": "added_photos", "is_published": True, "updated_time": fb_time(ago(minutes=1)),
                 "permalink_url": f"https://www.facebook.com/{PAGE_ID}/posts/{post_id.split('_')[1]}",
                 "promotion_status": "inactive", "id": post_id},
    }  # fmt: skip
    if author is not None:
        value["from"] = {"id": author[0], "name": author[1]}
    if verb != "remove":
        value["message"] = text
    return value
