"""SMS through Twilio: inbound messages arrive by webhook (``threads.api.twilio_webhook``), replies go out through
Twilio's Messages API, and delivery receipts come back as status callbacks.

- **Account**: a ChannelAccount of kind ``sms`` whose ``address`` is our number in E.164. Credentials (JSON,
  encrypted) are ``{"account_sid": "AC…", "auth_token": "…"}``; an API key may be used for the REST calls
  (``"api_key_sid": "SK…", "api_key_secret": "…"``), but the auth token is still needed to check webhook
  signatures. ``config["messaging_service_sid"]`` (optional) sends through a Messaging Service instead of the
  number itself.
- **Normalizer** (``twilio.sms`` raw events: the webhook's form fields as JSON): the sender is a phone Party in
  E.164; media stay links in ``meta["media"]`` (never fetched: Twilio's media URLs may need our credentials, and
  they are the customer's data to open on demand).
- **Conversation key**: ``sms:<our number>:<their number>:<session start>``. A message continues the session of
  the last message between the two numbers (either direction) when that one is less than
  ``SMS_THREAD_INACTIVITY_HOURS`` old, else it starts a new session; a rep can move one conversation to a topic
  without dragging years of texts along.
- **Keywords**: an inbound body that is exactly STOP, STOPALL, UNSUBSCRIBE, CANCEL, END or QUIT (any case, spaces
  and a trailing "." or "!" ignored) opts the sender's contact out of SMS; START or UNSTOP opts them back in.
  Twilio itself answers the carrier-level reply; we record consent after ingestion (``messages_ingested``).
- **Sender**: refuses a number whose contact opted out (as ``message_send`` does: this is the second lock, for a
  STOP that arrived while the reply waited in the queue); Twilio's 21610 "unsubscribed recipient" records the
  opt-out and fails the message.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from contacts.identities import normalize_phone
from contacts.models import ContactIdentity
from contacts.selectors.consent import contact_reply_block_reason
from crm.errors import DomainError
from threads.connectors import (
    ChannelAuthError,
    ChannelRateLimited,
    ChannelUnavailable,
    ConnectorError,
    DeliveryRefused,
    NormalizedMessage,
    NormalizeError,
    OutgoingDraft,
    Party,
    SendResult,
    credentials_of,
    register_connection_test,
    register_normalizer,
    register_sender,
)
from threads.events import IngestedMessage, messages_ingested
from threads.models import Channel, ChannelAccount, Direction, Message, RawEvent
from threads.services.sms import (
    CARRIER_OPT_OUT_SOURCE,
    PENDING_PREFIX,
    UNSUBSCRIBED_CODE,
    sms_keyword_consents,
    sms_opt_out_record,
    twilio_error_text,
)

if TYPE_CHECKING:
    from threads.models import Thread

log = logging.getLogger(__name__)

EVENT_TYPE = "twilio.sms"
SIGNATURE_HEADER = "X-Twilio-Signature"
OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP"})
TIMEOUT = 20  # seconds for one Twilio API call; the delivery task retries after a timeout
DEFAULT_RETRY_AFTER = 60.0  # Twilio's 429 usually has no Retry-After
MAX_MEDIA = 10  # Twilio's own limit per message
# Twilio's answers that concern this one message (bad or unreachable number, body, region): retrying cannot help.
_MESSAGE_ERRORS = {21211, 21408, 21606, 21610, 21612, 21614, 21617, 21660, 30003, 30004, 30005, 30006, 30007}


class SmsRefused(DeliveryRefused):
    """Twilio refused this message, or we did (the recipient opted out): it fails with this text."""


# --- Credentials and the client ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TwilioCredentials:
    account_sid: str
    auth_token: str
    api_key_sid: str = ""
    api_key_secret: str = ""


def twilio_credentials(account: ChannelAccount) -> TwilioCredentials:
    data = credentials_of(account)
    creds = TwilioCredentials(
        account_sid=str(data.get("account_sid") or "").strip(), auth_token=str(data.get("auth_token") or "").strip(),
        api_key_sid=str(data.get("api_key_sid") or "").strip(),
        api_key_secret=str(data.get("api_key_secret") or "").strip(),
    )  # fmt: skip
    if not creds.account_sid.startswith("AC"):
        raise ChannelAuthError(f"{account.name} has no Twilio Account SID (AC…): enter it in the account's settings.")
    if not creds.auth_token and not (creds.api_key_sid and creds.api_key_secret):
        raise ChannelAuthError(f"{account.name} has no Twilio auth token or API key: enter one in its settings.")
    return creds


class _HttpClient(TwilioHttpClient):
    """Twilio's client, remembering the last response's headers: a 429's Retry-After is not on the exception."""

    last_headers: Mapping[str, str] = {}

    def request(self, *args: Any, **kwargs: Any) -> TwilioResponse:
        response = super().request(*args, **kwargs)
        self.last_headers = response.headers or {}
        return response


def twilio_client(account: ChannelAccount) -> tuple[Client, _HttpClient, TwilioCredentials]:
    creds = twilio_credentials(account)
    http = _HttpClient(timeout=TIMEOUT)
    if creds.api_key_sid and creds.api_key_secret:
        client = Client(creds.api_key_sid, creds.api_key_secret, creds.account_sid, http_client=http)
    else:
        client = Client(creds.account_sid, creds.auth_token, creds.account_sid, http_client=http)
    return client, http, creds


def _retry_after(headers: Mapping[str, str]) -> float:
    raw = (headers or {}).get("Retry-After", "")
    try:
        return max(1.0, float(raw))
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER


def _provider_error(account: ChannelAccount, exc: TwilioRestException, http: _HttpClient, doing: str) -> Exception:
    """The connector error for a Twilio error answer (error body: code, message, more_info, status)."""
    code = int(exc.code) if str(exc.code or "").isdigit() else 0
    text = str(exc.msg or "").split(": ", 1)[-1] or f"HTTP {exc.status}"
    if exc.status in (401, 403) or code in (20003, 20403):
        return ChannelAuthError(
            f"Twilio refused the credentials of {account.name} while {doing} (error {code or exc.status}: {text}): "
            "check the Account SID and the auth token or API key."
        )
    if exc.status == 429 or code == 20429:
        return ChannelRateLimited(
            f"Twilio asked us to slow down while {doing}.", retry_after=_retry_after(http.last_headers),
            endpoint="messages",
        )  # fmt: skip
    if exc.status >= 500:
        return ChannelUnavailable(f"Twilio is not answering properly while {doing} (HTTP {exc.status}: {text}).")
    return ConnectorError(f"Twilio refused {doing} (error {code or exc.status}: {text}).")


# --- Phone numbers and the conversation key ------------------------------------------------------------------


def phone_e164(value: str) -> str:
    """E.164 of a number Twilio or a person wrote; raises ValidationError when it is none."""
    return normalize_phone(str(value or "").strip())


def _key_time(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _last_stored(account: ChannelAccount, prefix: str, their: str, at: dt.datetime) -> tuple[dt.datetime, str] | None:
    """The newest stored SMS between the two numbers, at or before ``at``: (sent_at, provider_thread_key).

    Read through the contact that owns their number when there is one (the (contact, provider_thread_key) index
    keeps it to that person's messages), else among this account's unmatched messages (their partial index).
    """
    owner = ContactIdentity.objects.filter(kind="phone", normalized=their).values_list("contact_id", flat=True)
    qs = Message.objects.filter(channel=Channel.SMS, provider_thread_key__startswith=prefix, sent_at__lte=at)
    contact_id = owner.first()
    qs = qs.filter(contact_id=contact_id) if contact_id else qs.filter(channel_account=account, contact__isnull=True)
    return qs.order_by("-sent_at", "-id").values_list("sent_at", "provider_thread_key").first()


def sms_thread_key(
    *, account: ChannelAccount, our: str, their: str, at: dt.datetime, before_event: RawEvent | None = None
) -> str:
    """``sms:<our>:<their>:<session start>``. Reads the database, never writes it.

    ``before_event``: the raw event being normalized. Events of the same pair still pending before it are in the
    same batch (not stored yet); they continue or restart the session just as stored messages would, so a burst
    of texts from a new number shares one key.
    """
    prefix = f"sms:{our}:{their}:"
    window = dt.timedelta(hours=settings.SMS_THREAD_INACTIVITY_HOURS)
    last_at: dt.datetime | None = None
    start: dt.datetime | str | None = None
    last = _last_stored(account, prefix, their, at)
    if last is not None:
        last_at, start = last[0], last[1][len(prefix) :]
    if before_event is not None and before_event.pk:
        earlier = RawEvent.objects.filter(
            channel_account=account, status=RawEvent.Status.PENDING, pk__lt=before_event.pk, event_type=EVENT_TYPE,
            meta__our=our, meta__their=their,
        )  # fmt: skip
        if last_at is not None:
            earlier = earlier.filter(received_at__gt=last_at)
        for received_at in earlier.order_by("pk").values_list("received_at", flat=True)[:1000]:
            if last_at is None or received_at - last_at > window:
                start = received_at
            last_at = received_at
    if last_at is None or at - last_at > window or not start:
        start = at
    return prefix + (start if isinstance(start, str) else _key_time(start))


# --- Normalizer ----------------------------------------------------------------------------------------------


def keyword_of(body: str) -> dict[str, str] | None:
    word = body.strip().rstrip(".!").strip().upper()
    if word in OPT_OUT_KEYWORDS:
        return {"word": word, "action": "opt_out"}
    if word in OPT_IN_KEYWORDS:
        return {"word": word, "action": "opt_in"}
    return None


def _media(data: Mapping[str, Any]) -> list[dict[str, str]]:
    try:
        count = min(MAX_MEDIA, max(0, int(str(data.get("NumMedia") or "0"))))
    except ValueError:
        count = 0
    items = []
    for i in range(count):
        url = str(data.get(f"MediaUrl{i}") or "")
        if url:
            items.append({"url": url, "content_type": str(data.get(f"MediaContentType{i}") or "")})
    return items


_KEPT_FIELDS = {
    "AccountSid": "account_sid", "MessagingServiceSid": "messaging_service_sid", "NumSegments": "num_segments",
    "FromCity": "from_city", "FromState": "from_state", "FromZip": "from_zip", "FromCountry": "from_country",
}  # fmt: skip


def normalize_twilio_sms(event: RawEvent, account: ChannelAccount) -> list[NormalizedMessage]:
    try:
        data = json.loads(bytes(event.payload))
    except (UnicodeDecodeError, ValueError) as exc:
        raise NormalizeError(f"Twilio SMS event is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise NormalizeError("Twilio SMS event is not a JSON object.")
    sid = str(data.get("MessageSid") or data.get("SmsSid") or "").strip()
    if not sid:
        raise NormalizeError("Twilio SMS event has no MessageSid.")
    try:
        sender = phone_e164(data.get("From", ""))
    except ValidationError:
        raise NormalizeError(f"Twilio SMS event: From {data.get('From')!r} is not a phone number.") from None
    try:
        to = phone_e164(data["To"]) if data.get("To") else account.address
    except ValidationError:
        raise NormalizeError(f"Twilio SMS event: To {data.get('To')!r} is not a phone number.") from None
    our = account.address
    # Our own number as the sender: a copy of something we sent (another tool on the same number, a replay).
    outbound = sender == our
    their = to if outbound else sender
    body = str(data.get("Body") or "")
    sent_at = event.received_at
    meta: dict[str, Any] = {
        "twilio": {name: str(data[field]) for field, name in _KEPT_FIELDS.items() if data.get(field)}
    }
    media = _media(data)
    if media:
        meta["media"] = media
    keyword = None if outbound else keyword_of(body)
    if keyword:
        meta["keyword"] = keyword
    customer = Party("phone", their, role="to" if outbound else "from")
    return [
        NormalizedMessage(
            channel=Channel.SMS, direction=Direction.OUTBOUND if outbound else Direction.INBOUND, external_id=sid,
            sent_at=sent_at,
            provider_thread_key=sms_thread_key(account=account, our=our, their=their, at=sent_at, before_event=event),
            author=Party("phone", our, role="from") if outbound else customer, counterparts=[customer],
            body_text=body, body_display=body, meta=meta,
            delivery=Message.Delivery.SENT if outbound else Message.Delivery.NONE,
        )
    ]  # fmt: skip


# --- Sending -------------------------------------------------------------------------------------------------


def public_base_url() -> str:
    return settings.TWILIO_PUBLIC_BASE_URL or settings.SITE_URL


def status_callback_url(ref: str) -> str:
    """Where Twilio reports this message's delivery. Empty when our base URL is loopback: Twilio cannot reach it."""
    base = public_base_url().rstrip("/")
    host = (urlsplit(base).hostname or "").lower()
    if not base or host in ("localhost", "::1") or host.startswith("127."):
        return ""
    return f"{base}{reverse('twilio_status_webhook')}?{urlencode({'ref': ref})}"


def sms_block_reason(phone: str) -> str:
    """Why nothing may be sent to ``phone`` ("" when it may): its contact opted out of SMS or is do-not-contact."""
    identity = ContactIdentity.objects.filter(kind="phone", normalized=phone).select_related("contact").first()
    if identity is None:
        return ""
    return contact_reply_block_reason(identity.contact, "sms")


def prepare_sms(
    account: ChannelAccount, draft: OutgoingDraft, thread: Thread, reply_to: Message | None
) -> OutgoingDraft:
    """Check the recipient and the length, give the message a provisional id and its conversation key."""
    recipients = [*draft.to, *draft.cc]
    if len(recipients) != 1:
        raise DomainError(
            "An SMS goes to exactly one phone number.", fields={"to": ["Choose one number."]}, code="sms_one_recipient"
        )
    party = recipients[0]
    try:
        their = phone_e164(party.address)
    except ValidationError:
        raise DomainError(
            f"{party.address!r} is not a phone number.", fields={"to": ["Not a phone number."]}, code="invalid_phone"
        ) from None
    length = len(draft.body_text)
    if length > settings.SMS_MAX_BODY:
        raise DomainError(
            f"The SMS is {length} characters long; the limit is {settings.SMS_MAX_BODY}.",
            fields={"body_text": ["Too long."]}, code="sms_too_long",
        )  # fmt: skip
    if draft.attachments:
        # MMS takes public media URLs, not uploads; refusing keeps the rep from believing the file went out.
        raise DomainError(
            "An SMS cannot carry attachments: send a link instead.",
            fields={"attachments": ["Not possible by SMS."]}, code="sms_no_attachments",
        )  # fmt: skip
    draft.to, draft.cc = [Party("phone", their, party.name, "to")], []
    draft.subject = ""  # SMS has no subject; the reply form pre-fills the thread's last one
    draft.from_address = account.address
    draft.external_id = f"{PENDING_PREFIX}{uuid.uuid4().hex}"
    draft.provider_thread_key = sms_thread_key(account=account, our=account.address, their=their, at=timezone.now())
    return draft


def send_sms(account: ChannelAccount, draft: OutgoingDraft) -> SendResult:
    """Deliver ``draft`` through Twilio. Refused credentials → ChannelAuthError; 429 → ChannelRateLimited; an
    outage → ChannelUnavailable (the task retries); a refusal of this message → SmsRefused."""
    if len(draft.to) != 1:
        raise SmsRefused("An SMS goes to exactly one phone number.")
    their = draft.to[0].address
    blocked = sms_block_reason(their)
    if blocked:
        raise SmsRefused(f"Not sent: {blocked}")
    client, http, _ = twilio_client(account)
    ref = draft.external_id.removeprefix(PENDING_PREFIX)
    params: dict[str, Any] = {"to": their, "body": draft.body_text}
    service = str((account.config or {}).get("messaging_service_sid") or "")
    if service:
        params["messaging_service_sid"] = service
    else:
        params["from_"] = account.address
    callback = status_callback_url(ref)
    if callback:
        params["status_callback"] = callback
    try:
        sent = client.messages.create(**params)
    except TwilioRestException as exc:
        code = int(exc.code) if str(exc.code or "").isdigit() else 0
        if code in _MESSAGE_ERRORS:
            if str(code) == UNSUBSCRIBED_CODE:
                # The carrier-level STOP Twilio enforces: record it, so the CRM stops offering this channel too.
                sms_opt_out_record(phones=[their], source=CARRIER_OPT_OUT_SOURCE)
            raise SmsRefused(f"Not sent: {twilio_error_text(code)}") from exc
        raise _provider_error(account, exc, http, "sending an SMS") from exc
    except requests.RequestException as exc:
        raise ChannelUnavailable(f"Cannot reach Twilio: {exc or type(exc).__name__}") from exc
    except TwilioException as exc:
        raise ConnectorError(f"Twilio client error: {exc}") from exc
    meta: dict[str, Any] = {"twilio_status": str(sent.status or "")}
    if sent.num_segments:
        meta["segments"] = str(sent.num_segments)
    return SendResult(external_id=str(sent.sid), meta=meta)


# --- Connection test -----------------------------------------------------------------------------------------


def check_connection(account: ChannelAccount) -> str:
    """Fetch the Twilio account and look our number up among its incoming numbers."""
    client, http, creds = twilio_client(account)
    try:
        info = client.api.v2010.accounts(creds.account_sid).fetch()
        numbers = client.api.v2010.accounts(creds.account_sid).incoming_phone_numbers.list(
            phone_number=account.address, limit=1
        )
    except TwilioRestException as exc:
        raise _provider_error(account, exc, http, "testing the connection") from exc
    except requests.RequestException as exc:
        raise ChannelUnavailable(f"Cannot reach Twilio: {exc or type(exc).__name__}") from exc
    label = f"account {creds.account_sid}" + (f" “{info.friendly_name}”" if info.friendly_name else "")
    if str(info.status or "active") != "active":
        raise ConnectorError(f"The Twilio {label} is {info.status}: reactivate it in Twilio's console.")
    if not numbers and not (account.config or {}).get("messaging_service_sid"):
        raise ConnectorError(f"Connected to Twilio ({label}), but {account.address} is not one of its numbers.")
    return f"Connected: {account.address} ({label})"


# --- Keywords after ingestion --------------------------------------------------------------------------------


def _record_keywords(sender: Any, *, messages: list[IngestedMessage], **kwargs: Any) -> None:
    ids = [m.message_id for m in messages if m.channel == Channel.SMS and m.direction == Direction.INBOUND]
    if not ids:
        return
    try:
        sms_keyword_consents(message_ids=ids)
    except Exception:
        # After commit, in the ingesting task: raising would skip the other receivers (plans, listening).
        log.exception("recording SMS keyword consent failed for messages %s", ids[:20])


def accounts_for_number(number: str) -> list[ChannelAccount]:
    """SMS accounts whose number is ``number`` (E.164). Several may share one (a private and a team account)."""
    return list(ChannelAccount.objects.filter(kind=ChannelAccount.Kind.SMS, address=number).order_by("pk"))


def signature_valid(account: ChannelAccount, url: str, params: Mapping[str, Any], signature: str | None) -> bool:
    """X-Twilio-Signature: HMAC-SHA1 (auth token) of the URL Twilio called plus the sorted POST fields."""
    if not signature:
        return False
    try:
        token = str(credentials_of(account).get("auth_token") or "")
    except ConnectorError:
        token = ""
    if not token:
        log.warning("SMS account %s has no auth token: Twilio's webhook signatures cannot be checked", account.pk)
        return False
    return RequestValidator(token).validate(url, params, signature)


register_normalizer(EVENT_TYPE, normalize_twilio_sms)
register_sender(ChannelAccount.Kind.SMS, send_sms, prepare=prepare_sms)
register_connection_test(ChannelAccount.Kind.SMS, check_connection)
messages_ingested.connect(_record_keywords, dispatch_uid="threads.connectors.sms.keywords")
