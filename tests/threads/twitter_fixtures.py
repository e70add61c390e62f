"""Recorded X API v2 exchanges for the Twitter/X connector tests, shaped as X documents them: ``data``,
``includes.users`` (``tweets``, ``places``), ``meta`` (``result_count``, ``newest_id``, ``oldest_id``,
``next_token``), problem bodies (``title``, ``detail``, ``type``, ``status``) and ``x-rate-limit-*`` headers.

Ids are real-looking snowflakes whose embedded time matches ``created_at``. Nothing here imports Django: the
SIGKILL test loads ``FakeX`` into a Celery worker process before Django starts.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

API = "https://api.twitter.com/2"
TOKEN_URL = f"{API}/oauth2/token"

OUR_ID, OUR_HANDLE = "1460344917440512001", "ThreadlineHQ"
ANN_ID, ANN_HANDLE = "2244994945", "AnnSmith"
OMAR_ID, OMAR_HANDLE = "783214", "omar_k"
NOA_ID, NOA_HANDLE = "1349149096909668363", "noa_levi"
ZED_ID = "17874544"

OUR = {"id": OUR_ID, "name": "Threadline", "username": OUR_HANDLE}
ANN = {"id": ANN_ID, "name": "Ann Smith", "username": ANN_HANDLE}
OMAR = {"id": OMAR_ID, "name": "عمر خالد", "username": OMAR_HANDLE}
NOA = {"id": NOA_ID, "name": "נועה לוי", "username": NOA_HANDLE}

T1 = "2123702889477046272"  # 2026-11-20 09:00 Ann: "my order is late" (tagged Manhattan)
OUR_BROADCAST = "2123704147768246272"  # 09:05 ours, to nobody
OUR_T = "2123707922641846272"  # 09:20 our reply to T1
T2 = "2123710439224246272"  # 09:30 Ann answers our reply
T3 = "2123717988971446272"  # 10:00 Omar, Arabic and emoji
T4 = "2124050177848246272"  # 2026-11-21 08:00 Ann, renamed to @AnnBuilds
T5 = "2124057727595446272"  # 08:30 Omar again; the tweet he answers (T3) is gone
OUR_REPLY = "2124065277342646272"  # 09:00 what create_tweet returns for our next reply
D1 = "2123712955806646279"  # 2026-11-20 09:40 Noa → us
D2 = "2123714214097846279"  # 09:45 us → Noa
D3 = "2123733088465846279"  # 11:00 Noa → us
D4 = "2124053952721846279"  # 2026-11-21 08:15 Noa → us
NOA_CONVERSATION = f"{NOA_ID}-{OUR_ID}"

MENTIONS_URL = f"{API}/users/{OUR_ID}/mentions"
TIMELINE_URL = f"{API}/users/{OUR_ID}/tweets"
DM_EVENTS_URL = f"{API}/dm_events"
SEARCH_URL = f"{API}/tweets/search/recent"
ME_URL = f"{API}/users/me"
CREATE_TWEET_URL = f"{API}/tweets"
NEXT_TOKEN = "7140dibdnow9c7btw3w29grvxfcgvpb9n9coehpk7xz5i"
DM_NEXT_TOKEN = "18LAA581J5II7LA00Z"
SEARCH_NEXT_TOKEN = "b26v89c19zqg8o3fpzbkk6rp8e9f7x1p7v0c6wbk1f9ul"


def dm_conversation_url(conversation: str) -> str:
    return f"{API}/dm_conversations/{conversation}/messages"


def dm_with_url(participant: str) -> str:
    return f"{API}/dm_conversations/with/{participant}/messages"


def mention(start: int, username: str, user_id: str) -> dict[str, Any]:
    return {"start": start, "end": start + len(username) + 1, "username": username, "id": user_id}


TWEET_T1 = {
    "id": T1, "edit_history_tweet_ids": [T1], "author_id": ANN_ID, "conversation_id": T1,
    "created_at": "2026-11-20T09:00:00.000Z", "lang": "en",
    "text": f"@{OUR_HANDLE} my order #4410 is late",
    "entities": {"mentions": [mention(0, OUR_HANDLE, OUR_ID)]},
    "geo": {"place_id": "01a9a39529b27f36"},
}  # fmt: skip
TWEET_OUR_T = {
    "id": OUR_T, "edit_history_tweet_ids": [OUR_T], "author_id": OUR_ID, "conversation_id": T1,
    "created_at": "2026-11-20T09:20:00.000Z", "lang": "en", "in_reply_to_user_id": ANN_ID,
    "referenced_tweets": [{"type": "replied_to", "id": T1}],
    "text": f"@{ANN_HANDLE} So sorry, Ann! Checking with the courier now.",
    "entities": {"mentions": [mention(0, ANN_HANDLE, ANN_ID)]},
}  # fmt: skip
TWEET_OUR_BROADCAST = {
    "id": OUR_BROADCAST, "edit_history_tweet_ids": [OUR_BROADCAST], "author_id": OUR_ID,
    "conversation_id": OUR_BROADCAST, "created_at": "2026-11-20T09:05:00.000Z", "lang": "en",
    "text": "Our winter collection is live ✨ https://t.co/Ab12Cd34Ef",
    "entities": {"urls": [{"start": 32, "end": 55, "url": "https://t.co/Ab12Cd34Ef",
                           "expanded_url": "https://shop.example/winter", "display_url": "shop.example/winter"}]},
}  # fmt: skip
TWEET_T2 = {
    "id": T2, "edit_history_tweet_ids": [T2], "author_id": ANN_ID, "conversation_id": T1,
    "created_at": "2026-11-20T09:30:00.000Z", "lang": "en", "in_reply_to_user_id": OUR_ID,
    "referenced_tweets": [{"type": "replied_to", "id": OUR_T}],
    "text": f"@{OUR_HANDLE} any update? Tracking &amp; invoice please &lt;3",
    "entities": {"mentions": [mention(0, OUR_HANDLE, OUR_ID)]},
}  # fmt: skip
TWEET_T3 = {
    "id": T3, "edit_history_tweet_ids": [T3], "author_id": OMAR_ID, "conversation_id": T3,
    "created_at": "2026-11-20T10:00:00.000Z", "lang": "ar",
    "text": f"@{OUR_HANDLE} مرحبا! الطلب رقم 4411 لم يصل بعد 📦😕👨‍👩‍👧",
    "entities": {"mentions": [mention(0, OUR_HANDLE, OUR_ID)]},
}  # fmt: skip
TWEET_T4 = {
    "id": T4, "edit_history_tweet_ids": [T4], "author_id": ANN_ID, "conversation_id": T4,
    "created_at": "2026-11-21T08:00:00.000Z", "lang": "en",
    "text": f"@{OUR_HANDLE} new handle, same me. Order arrived, thanks!",
    "entities": {"mentions": [mention(0, OUR_HANDLE, OUR_ID)]},
}  # fmt: skip
TWEET_T5 = {
    "id": T5, "edit_history_tweet_ids": [T5], "author_id": OMAR_ID, "conversation_id": T3,
    "created_at": "2026-11-21T08:30:00.000Z", "lang": "en", "in_reply_to_user_id": OMAR_ID,
    "referenced_tweets": [{"type": "replied_to", "id": T3}],
    "text": f"@{OUR_HANDLE} deleted my last one, it's here now",
    "entities": {"mentions": [mention(0, OUR_HANDLE, OUR_ID)]},
}  # fmt: skip
MANHATTAN = {
    "id": "01a9a39529b27f36", "full_name": "Manhattan, NY", "name": "Manhattan", "country_code": "US",
    "place_type": "city",
    "geo": {"type": "Feature", "bbox": [-74.026675, 40.683935, -73.910408, 40.877483], "properties": {}},
}  # fmt: skip

# GET /2/users/:id/mentions — first sync: two pages, newest first.
MENTIONS_PAGE_1 = {
    "data": [TWEET_T3, TWEET_T2],
    "includes": {"users": [OMAR, ANN, OUR], "tweets": [TWEET_OUR_T]},
    "meta": {"result_count": 2, "newest_id": T3, "oldest_id": T2, "next_token": NEXT_TOKEN},
}
MENTIONS_PAGE_2 = {
    "data": [TWEET_T1],
    "includes": {"users": [ANN, OUR], "places": [MANHATTAN]},
    "meta": {"result_count": 1, "newest_id": T1, "oldest_id": T1},
}
# …the next poll (since_id=T3): Ann under a new handle and display name.
MENTIONS_SINCE_T3 = {
    "data": [TWEET_T4],
    "includes": {"users": [{"id": ANN_ID, "name": "Ann Smith-Builder", "username": "AnnBuilds"}, OUR]},
    "meta": {"result_count": 1, "newest_id": T4, "oldest_id": T4},
}
# A mention answering a tweet that has been deleted since: X reports it as a partial error.
MENTIONS_WITH_DELETED_PARENT = {
    "data": [TWEET_T5],
    "includes": {"users": [OMAR, OUR]},
    "errors": [
        {
            "value": T3, "detail": f"Could not find tweet with referenced_tweets.id: [{T3}].",
            "title": "Not Found Error", "resource_type": "tweet", "parameter": "referenced_tweets.id",
            "resource_id": T3, "type": "https://api.twitter.com/2/problems/resource-not-found",
        }
    ],
    "meta": {"result_count": 1, "newest_id": T5, "oldest_id": T5},
}  # fmt: skip
EMPTY = {"meta": {"result_count": 0}}

# GET /2/users/:id/tweets — our own: a reply to Ann and a broadcast.
TIMELINE_PAGE = {
    "data": [TWEET_OUR_T, TWEET_OUR_BROADCAST],
    "includes": {"users": [OUR, ANN], "tweets": [TWEET_T1]},
    "meta": {"result_count": 2, "newest_id": OUR_T, "oldest_id": OUR_BROADCAST},
}


def dm(event_id: str, sender: str, text: str, created_at: str) -> dict[str, Any]:
    return {"id": event_id, "event_type": "MessageCreate", "text": text, "sender_id": sender,
            "dm_conversation_id": NOA_CONVERSATION, "created_at": created_at}  # fmt: skip


DM_1 = dm(D1, NOA_ID, "שלום, אפשר לקבל קבלה? 🙏", "2026-11-20T09:40:00.000Z")
DM_2 = dm(D2, OUR_ID, "Of course, Noa: it is on its way by e-mail.", "2026-11-20T09:45:00.000Z")
DM_3 = dm(D3, NOA_ID, "תודה רבה! Got it.", "2026-11-20T11:00:00.000Z")
DM_4 = dm(D4, NOA_ID, "One more question about sizes 👟", "2026-11-21T08:15:00.000Z")

# GET /2/dm_events — newest first, no since_id.
DM_PAGE_1 = {
    "data": [DM_3, DM_2],
    "includes": {"users": [NOA, OUR]},
    "meta": {"result_count": 2, "next_token": DM_NEXT_TOKEN},
}
DM_PAGE_2 = {"data": [DM_1], "includes": {"users": [NOA]}, "meta": {"result_count": 1}}
# Later: one new event above what is stored (D3), then the stored ones; a second page exists but is never needed.
DM_PAGE_AFTER = {
    "data": [DM_4, DM_3, DM_2],
    "includes": {"users": [NOA, OUR]},
    "meta": {"result_count": 3, "next_token": DM_NEXT_TOKEN},
}

ME = {"data": {"id": OUR_ID, "name": "Threadline", "username": OUR_HANDLE}}
CREATE_TWEET = {"data": {"id": OUR_REPLY, "edit_history_tweet_ids": [OUR_REPLY], "text": "Glad it arrived, Ann!"}}
CREATE_DM = {"data": {"dm_conversation_id": NOA_CONVERSATION, "dm_event_id": "2124066535633846279"}}
TOKEN_REFRESHED = {
    "token_type": "bearer", "expires_in": 7200, "access_token": "new-access-token",
    "scope": "tweet.read tweet.write users.read dm.read dm.write offline.access", "refresh_token": "new-refresh-token",
}  # fmt: skip
TOKEN_REFUSED = {"error": "invalid_request", "error_description": "Value passed for the token was invalid."}

# Problem bodies.
UNAUTHORIZED = {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}
TOO_MANY_REQUESTS = {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}
SERVICE_UNAVAILABLE = {
    "title": "Service Unavailable", "detail": "Service Unavailable", "type": "about:blank", "status": 503
}  # fmt: skip
DUPLICATE_CONTENT = {
    "detail": "You are not allowed to create a Tweet with duplicate content.", "type": "about:blank",
    "title": "Forbidden", "status": 403,
}  # fmt: skip
DELETE_T1 = {"data": {"delete": {"tweet": {"id": T1, "author_id": ANN_ID}, "event_at": "2026-11-20T12:00:00.000Z"}}}


def rate_limit_headers(*, reset_in: float | None, limit: int = 180, remaining: int = 0) -> dict[str, str]:
    headers = {"x-rate-limit-limit": str(limit), "x-rate-limit-remaining": str(remaining)}
    if reset_in is not None:
        headers["x-rate-limit-reset"] = str(int(time.time() + reset_in))
    return headers


# --- Generated ids relative to now (recent search refuses ids older than 7 days) ---------------------------------

SNOWFLAKE_EPOCH_MS = 1288834974657


def snowflake(when: dt.datetime, seq: int = 0) -> str:
    return str(((int(when.timestamp() * 1000) - SNOWFLAKE_EPOCH_MS) << 22) | seq)


def iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def search_pages(now: dt.datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """GET /2/tweets/search/recent for "threadline -is:retweet": two pages from the last hours."""
    s1, s2, s3 = (now - dt.timedelta(hours=h) for h in (3, 2, 1))
    zed = {"id": ZED_ID, "name": "Zed Reviews", "username": "zed_reviews", "verified": False,
           "public_metrics": {"followers_count": 48211, "following_count": 301, "tweet_count": 9120}}  # fmt: skip
    page_1 = {
        "data": [
            {"id": snowflake(s3), "author_id": ZED_ID, "conversation_id": snowflake(s3), "created_at": iso(s3),
             "lang": "en", "text": "Threadline keeps every customer chat in one place. Impressed &amp; switching.",
             "geo": {"coordinates": {"type": "Point", "coordinates": [13.4050, 52.5200]}},
             "public_metrics": {"retweet_count": 4, "reply_count": 1, "like_count": 31, "quote_count": 0}},
            {"id": snowflake(s2), "author_id": OMAR_ID, "conversation_id": snowflake(s2), "created_at": iso(s2),
             "lang": "ar", "text": "هل جرب أحد threadline؟",
             "public_metrics": {"retweet_count": 0, "reply_count": 0, "like_count": 2, "quote_count": 0}},
        ],
        "includes": {"users": [zed, OMAR]},
        "meta": {"newest_id": snowflake(s3), "oldest_id": snowflake(s2), "result_count": 2,
                 "next_token": SEARCH_NEXT_TOKEN},
    }  # fmt: skip
    page_2 = {
        "data": [
            {"id": snowflake(s1), "author_id": ANN_ID, "conversation_id": snowflake(s1), "created_at": iso(s1),
             "lang": "und", "text": "threadline 🔥🔥", "geo": {"place_id": "01a9a39529b27f36"}},
        ],
        "includes": {"users": [ANN], "places": [MANHATTAN]},
        "meta": {"newest_id": snowflake(s1), "oldest_id": snowflake(s1), "result_count": 1},
    }  # fmt: skip
    return page_1, page_2


# --- A fake X for bulk runs (the SIGKILL tests) -------------------------------------------------------------------


class FakeX:
    """Serves ``total`` mentions from ``authors`` people through ``responses``, honouring since_id, until_id,
    max_results and pagination_token like the real endpoint (newest first); timeline and DMs are empty.
    ``delay`` seconds per mentions page make a run long enough to kill mid-way."""

    BASE = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)

    def __init__(self, total: int, authors: int = 50, delay: float = 0.0) -> None:
        self.delay = delay
        self.ids = [snowflake(self.BASE + dt.timedelta(seconds=i), seq=1) for i in range(total)]
        self.authors = authors

    @staticmethod
    def author(i: int, authors: int) -> dict[str, str]:
        n = i % authors
        return {"id": str(900000 + n), "name": f"Fan {n}", "username": f"fan_{n}"}

    def tweet(self, index: int) -> dict[str, Any]:
        tweet_id = self.ids[index]
        author = self.author(index, self.authors)
        return {
            "id": tweet_id, "author_id": author["id"], "conversation_id": tweet_id, "lang": "en",
            "created_at": iso(self.BASE + dt.timedelta(seconds=index)), "edit_history_tweet_ids": [tweet_id],
            "text": f"@{OUR_HANDLE} question number {index} 🙂",
            "entities": {"mentions": [mention(0, OUR_HANDLE, OUR_ID)]},
        }  # fmt: skip

    def mentions(self, request: Any) -> tuple[int, dict[str, str], str]:
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        since = int(query.get("since_id", 0))
        until = int(query.get("until_id", 2**63))
        below = int(query.get("pagination_token", until))
        size = int(query.get("max_results", 10))
        picked = [i for i in range(len(self.ids) - 1, -1, -1) if since < int(self.ids[i]) < min(until, below)]
        page = picked[:size]
        if self.delay:
            time.sleep(self.delay)
        if not page:
            return 200, {}, json.dumps(EMPTY)
        body: dict[str, Any] = {
            "data": [self.tweet(i) for i in page],
            "includes": {"users": [self.author(i, self.authors) for i in page[: self.authors]] + [OUR]},
            "meta": {"result_count": len(page), "newest_id": self.ids[page[0]], "oldest_id": self.ids[page[-1]]},
        }
        if len(picked) > size:
            body["meta"]["next_token"] = self.ids[page[-1]]  # an opaque token; here, "below this id"
        return 200, {"x-rate-limit-remaining": "100"}, json.dumps(body)

    def install(self, rsps: Any) -> None:
        rsps.add_callback("GET", MENTIONS_URL, callback=self.mentions)
        rsps.add("GET", TIMELINE_URL, json=EMPTY)
        rsps.add("GET", DM_EVENTS_URL, json={"meta": {"result_count": 0}})
