"""The e-mail normalizer: every kind of real-world mail reads, broken parts degrade, only non-mail dead-letters."""

from __future__ import annotations

import datetime as dt
import struct
from pathlib import Path

import pytest
from django.utils import timezone

from tests.threads.factories import ChannelAccountFactory
from threads.connectors import NormalizeError, RawEventIn
from threads.connectors.email.mime import normalize_email_event, parse_email
from threads.models import ChannelAccount, Message, RawEvent
from threads.services import raw_events_process, raw_events_store

pytestmark = pytest.mark.django_db

SAMPLES = Path(__file__).parent / "mail_samples"
RECEIVED = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def account(world) -> ChannelAccount:
    return ChannelAccountFactory(owner=world.a1, team=world.team_a, address="sales@ourco.example")


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def parse(raw: bytes, account: ChannelAccount, **meta):
    return parse_email(raw, account=account, meta=meta, received_at=RECEIVED)


def mail(headers: dict[str, str], body: str | bytes = "Hello there.\n", *, content_type: str = "") -> bytes:
    """A minimal RFC 822 message; ``headers`` in order, CRLF line ends like on the wire."""
    lines = [f"{k}: {v}" for k, v in headers.items()]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    head = "\r\n".join(lines).encode("utf-8")
    data = body if isinstance(body, bytes) else body.replace("\n", "\r\n").encode("utf-8")
    return head + b"\r\n\r\n" + data


BASE = {"From": "Ann <ann@customer.example>", "To": "sales@ourco.example", "Subject": "Hi",
        "Date": "Tue, 04 Mar 2025 09:15:00 +0000", "Message-ID": "<base-1@customer.example>"}  # fmt: skip


# --- Basic path ---------------------------------------------------------------------------------------------------


def test_plain_mail_reads_headers_addresses_and_body(account) -> None:
    m = parse(sample("plain.eml"), account)
    assert m.channel == "email" and m.direction == "inbound"
    assert m.external_id == "plain-1@customer.example" and m.key() == "email:plain-1@customer.example"
    assert m.provider_thread_key == "plain-1@customer.example" and m.thread_hint is None
    assert m.author.address == "ann@customer.example" and m.author.name == "Ann Example"
    assert m.counterparts == [m.author]
    assert m.subject == "Quote for 40 seats"
    assert m.sent_at == dt.datetime(2025, 3, 4, 8, 15, tzinfo=dt.UTC)
    assert "Grüße aus Köln" in m.body_text and m.body_html == ""
    assert m.meta["headers"]["cc"] == '"Lee, Boss" <boss@customer.example>'
    assert "problems" not in m.meta


def test_multipart_alternative_keeps_text_and_html_and_decodes_encoded_words(account) -> None:
    m = parse(sample("alternative.eml"), account)
    assert m.author.name == "Jürgen Müller" and m.subject == "Re: Preise über die Lizenz"
    assert m.body_text == "Danke für das Angebot."
    assert "<b>Angebot</b>" in m.body_html
    assert m.attachments == []


def test_references_root_is_the_thread_key_and_our_message_id_is_a_thread_hint(account) -> None:
    m = parse(sample("alternative.eml"), account)
    assert m.provider_thread_key == "root-0@customer.example"
    assert m.meta["references"] == ["root-0@customer.example", "tl.77.abc123@threadline.invalid"]
    assert m.meta["in_reply_to"] == "tl.77.abc123@threadline.invalid"
    assert m.thread_hint == 77


def test_in_reply_to_alone_keys_the_thread(account) -> None:
    m = parse(mail({**BASE, "In-Reply-To": "<parent@customer.example>"}), account)
    assert m.provider_thread_key == "parent@customer.example" and m.thread_hint is None


def test_most_recent_of_our_ids_is_the_hint(account) -> None:
    headers = {**BASE, "References": "<tl.5.aaa@threadline.invalid> <x@y> <tl.9.bbb@threadline.invalid>"}
    assert parse(mail(headers), account).thread_hint == 9
    headers["In-Reply-To"] = "<tl.12.ccc@threadline.invalid>"
    assert parse(mail(headers), account).thread_hint == 12


def test_normalize_email_event_reads_the_stored_payload(account) -> None:
    event = RawEvent(channel_account=account, provider_event_id="1", event_type="email",
                     payload=memoryview(sample("plain.eml")), meta={"folder": "INBOX", "uid": 7},
                     received_at=RECEIVED)  # fmt: skip
    [m] = normalize_email_event(event, account)
    assert m.external_id == "plain-1@customer.example" and m.meta["folder"] == "INBOX" and m.meta["uid"] == 7


# --- Bodies ---------------------------------------------------------------------------------------------------------


def test_html_only_mail_gets_a_text_body_without_markup_scripts_or_styles(account) -> None:
    m = parse(sample("html_only.eml"), account)
    assert m.body_html.startswith("<html>")
    assert m.body_text == "Spring update\nPrices drop by 10 % & delivery is free.\n\nCafé opening\nnext week.\nOne\nTwo"
    assert "track()" not in m.body_text and "color" not in m.body_text
    assert m.body_display == m.body_text
    assert m.sent_at == dt.datetime(2025, 3, 6, 13, 0, tzinfo=dt.UTC)


def test_nested_multipart_reads_body_once_and_keeps_every_attachment(account) -> None:
    m = parse(sample("nested.eml"), account)
    assert m.body_text == "Please find the contract attached."
    assert 'src="cid:logo@x"' in m.body_html
    assert "forwarded text" not in m.body_text
    names = [a.name for a in m.attachments]
    assert names == ["logo.png", "Vertrag für 2025.pdf", "Notiz über Preise.txt", "attachment-4.bin",
                     "attachment-5.eml"]  # fmt: skip
    logo, pdf, note, unnamed, forwarded = m.attachments
    assert logo.content_type == "image/png" and logo.data.startswith(b"\x89PNG") and logo.size == len(logo.data)
    assert pdf.content_type == "application/pdf" and pdf.data.startswith(b"%PDF-1.4")
    assert note.data.strip() == b"Net 30."
    assert unnamed.data == b"\x00\x01\x02\x03\x04" and unnamed.size == 5
    assert forwarded.content_type == "message/rfc822" and b"This forwarded text" in forwarded.data


def test_unknown_charset_and_raw_8bit_headers_decode_with_fallbacks(account) -> None:
    m = parse(sample("broken_charset.eml"), account)
    assert m.body_text == "Preis: 100 € für Café"
    assert m.author.name == "René" and m.author.address == "rene@customer.example"
    assert m.subject.endswith("und Tee") and "Caf" in m.subject


def test_utf8_header_on_latin1_bytes_falls_back_instead_of_failing(account) -> None:
    m = parse(sample("lying_utf8.eml"), account)
    assert m.body_text == "Grüße, Ærø"
    assert m.body_html == "<p>Grüße</p>"


def test_quoted_reply_and_signature_are_stripped_for_display_only(account) -> None:
    m = parse(sample("reply_signature.eml"), account)
    assert m.body_display == "Monday works for me, see you at 10."
    assert "Best regards" in m.body_text and "> Can we meet on Monday?" in m.body_text
    assert m.thread_hint == 31 and m.provider_thread_key == "tl.31.x9y8@threadline.invalid"


def test_nul_bytes_and_control_junk_never_reach_the_database(account) -> None:
    raw = mail({**BASE, "Subject": "a\x00b"}, b"bo\x00dy\r\n", content_type="text/plain; charset=utf-8")
    m = parse(raw, account)
    assert m.subject == "ab" and m.body_text == "body"


# --- Missing or broken headers --------------------------------------------------------------------------------------


def test_missing_message_id_derives_a_stable_id_from_the_content(account) -> None:
    headers = {k: v for k, v in BASE.items() if k != "Message-ID"}
    raw = mail(headers, "Same body\n")
    first, second = parse(raw, account), parse(raw, account)
    assert first.external_id == second.external_id
    assert first.external_id.startswith("derived-") and first.external_id.endswith("@threadline")
    assert first.provider_thread_key == first.external_id
    # The same mail exported with LF line ends (an mbox) is the same message.
    assert parse(raw.replace(b"\r\n", b"\n"), account).external_id == first.external_id
    assert parse(mail(headers, "Other body\n"), account).external_id != first.external_id
    assert parse(mail({**headers, "Subject": "Other"}, "Same body\n"), account).external_id != first.external_id
    assert any("Message-ID" in p for p in first.meta["problems"])


@pytest.mark.parametrize(
    "date", [None, "yesterday-ish", "Mon, 01 Jan 1900 00:00:00 +0000", "Fri, 01 Jan 2100 0:0 +0000"]
)
def test_missing_garbage_or_absurd_date_falls_back_to_received_time(account, date) -> None:
    headers = {k: v for k, v in BASE.items() if k != "Date"}
    if date:
        headers["Date"] = date
    m = parse(mail(headers), account)
    assert m.sent_at == RECEIVED
    assert any("Date" in p for p in m.meta["problems"])


def test_naive_date_is_taken_as_utc(account) -> None:
    m = parse(mail({**BASE, "Date": "Tue, 04 Mar 2025 09:15:00 -0000"}), account)
    assert m.sent_at == dt.datetime(2025, 3, 4, 9, 15, tzinfo=dt.UTC) and m.sent_at.tzinfo is not None


def test_unparseable_recipients_are_skipped_not_fatal(world, account) -> None:
    raw = mail({**BASE, "From": "sales@ourco.example", "To": 'garbage, "no address", <@@>, bob@customer.example',
                "Cc": "=?utf-8?q?broken, Carol <carol@customer.example>"})  # fmt: skip
    m = parse(raw, account)
    assert [p.address for p in m.counterparts] == ["bob@customer.example", "carol@customer.example"]


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"", "empty"),
        (b"\x00\xff\xfe garbage that is not mail\n\x01\x02", "no headers"),
        (b"%PDF-1.4\n%\xe2\xe3\n1 0 obj\n", "no headers"),
        (b"To: sales@ourco.example\nSubject: nobody sent this\n\nbody\n", "no sender"),
        (b"From: undisclosed\nSubject: x\n\nbody\n", "no sender"),
    ],
)
def test_non_mail_or_mail_without_sender_is_a_normalize_error(account, raw, error) -> None:
    with pytest.raises(NormalizeError, match=error):
        parse(raw, account)


# --- Direction -------------------------------------------------------------------------------------------------------


def test_mail_from_our_address_is_outbound_to_its_recipients(account) -> None:
    raw = mail({**BASE, "From": "Sales <SALES@ourco.example>", "To": "Ann <ann@customer.example>, sales@ourco.example",
                "Cc": "boss@customer.example"})  # fmt: skip
    m = parse(raw, account)
    assert m.direction == "outbound" and m.author.address == "sales@ourco.example"
    assert [(p.address, p.role) for p in m.counterparts] == [("ann@customer.example", "to"),
                                                             ("boss@customer.example", "cc")]  # fmt: skip


def test_mail_from_an_alias_or_in_the_sent_folder_is_outbound(account) -> None:
    account.config = {"aliases": ["bob@ourco.example"], "sent_folder": "Sent Items"}
    assert parse(mail({**BASE, "From": "bob@ourco.example"}), account).direction == "outbound"
    assert parse(mail(BASE), account, folder="Sent Items").direction == "outbound"
    assert parse(mail(BASE), account, folder="INBOX").direction == "inbound"
    account.config = {}
    assert parse(mail(BASE), account, folder="Sent").direction == "outbound"


# --- Attachments: winmail.dat, size bounds ----------------------------------------------------------------------------


def _tnef_object(level: int, attr: int, attr_type: int, data: bytes) -> bytes:
    return struct.pack("<BHHI", level, attr, attr_type, len(data)) + data + struct.pack("<H", sum(data) & 0xFFFF)


def tnef(files: list[tuple[bytes, bytes]], body: bytes = b"") -> bytes:
    """A minimal winmail.dat: signature, version, code page, optional body, then per file rendering/title/data."""
    out = struct.pack("<IH", 0x223E9F78, 1)
    out += _tnef_object(1, 0x9006, 0x0008, struct.pack("<I", 0x10000))
    out += _tnef_object(1, 0x9007, 0x0006, struct.pack("<II", 1252, 0))
    if body:
        out += _tnef_object(1, 0x800C, 0x0002, body)
    for name, data in files:
        out += _tnef_object(2, 0x9002, 0x0006, b"\x01\x00" + b"\xff" * 4 + b"\x00" * 8)
        out += _tnef_object(2, 0x8010, 0x0001, name + b"\x00")
        out += _tnef_object(2, 0x800F, 0x0006, data)
    return out


def with_attachment(body: str, data: bytes, *, content_type: str, filename: str = "") -> bytes:
    import base64

    encoded = base64.encodebytes(data).decode()
    name = f'; filename="{filename}"' if filename else ""
    parts = (
        "--XX\nContent-Type: text/plain; charset=utf-8\n\n" + body + "\n"
        f"--XX\nContent-Type: {content_type}\nContent-Disposition: attachment{name}\n"
        "Content-Transfer-Encoding: base64\n\n" + encoded + "--XX--\n"
    )
    return mail(BASE, parts, content_type='multipart/mixed; boundary="XX"')


def test_winmail_dat_is_unpacked_into_its_files_and_body(account) -> None:
    data = tnef([(b"quote.xlsx", b"PK\x03\x04sheet"), (b"notes.txt", b"hello notes")], body=b"Body from Outlook")
    m = parse(with_attachment("", data, content_type="application/ms-tnef", filename="winmail.dat"), account)
    assert [(a.name, a.data) for a in m.attachments] == [
        ("quote.xlsx", b"PK\x03\x04sheet"),
        ("notes.txt", b"hello notes"),
    ]
    assert m.attachments[1].content_type == "text/plain"
    assert m.body_text == "Body from Outlook"


def test_unreadable_winmail_dat_is_kept_whole(account) -> None:
    junk = b"\x78\x9f\x3e\x22 this is not really TNEF" * 3
    m = parse(
        with_attachment("See attached.", junk, content_type="application/ms-tnef", filename="winmail.dat"), account
    )
    [kept] = m.attachments
    assert (kept.name, kept.content_type, kept.data, kept.size) == (
        "winmail.dat",
        "application/ms-tnef",
        junk,
        len(junk),
    )
    assert m.body_text == "See attached."
    assert any("winmail.dat" in p for p in m.meta["problems"])


def test_part_larger_than_the_bound_is_recorded_without_its_data(account, settings) -> None:
    settings.MAIL_MAX_PART_BYTES = 1000
    big = bytes(range(256)) * 20
    m = parse(with_attachment("x" * 3000, big, content_type="application/zip", filename="big.zip"), account)
    [att] = m.attachments
    assert att.data is None and att.omitted == "larger than 1000 bytes" and att.name == "big.zip"
    assert abs(att.size - len(big)) <= 3
    assert m.body_text == "x" * 3000  # the bound is for attachments; the body is whole
    small = parse(with_attachment("x", b"tiny", content_type="application/zip", filename="s.zip"), account)
    assert small.attachments[0].data == b"tiny"


def test_files_inside_winmail_dat_respect_the_bound(account, settings) -> None:
    settings.MAIL_MAX_PART_BYTES = 300
    data = tnef([(b"big.bin", b"\x01" * 400), (b"small.txt", b"ok")])
    assert len(data) > 300
    m = parse(with_attachment("", data, content_type="application/ms-tnef", filename="winmail.dat"), account)
    assert [(a.name, a.data, a.size, a.omitted) for a in m.attachments] == [
        ("big.bin", None, 400, "larger than 300 bytes"), ("small.txt", b"ok", 2, "")]  # fmt: skip
    settings.MAIL_MAX_PART_BYTES = 100  # a container beyond 4x the bound is kept, not unpacked
    m = parse(with_attachment("", data, content_type="application/ms-tnef", filename="winmail.dat"), account)
    [kept] = m.attachments
    assert (kept.name, kept.data, kept.omitted) == ("winmail.dat", None, "larger than 400 bytes")
    assert abs(kept.size - len(data)) <= 3


# --- Through the pipeline -------------------------------------------------------------------------------------------


def store(account: ChannelAccount, raws: list[bytes]) -> list[int]:
    return raw_events_store(
        account=account,
        events=[RawEventIn(provider_event_id=f"e{i}", event_type="email", payload=raw, content_type="message/rfc822")
                for i, raw in enumerate(raws)],
    )  # fmt: skip


def test_scripts_handlers_and_javascript_urls_are_neutralized_when_stored(account) -> None:
    store(account, [sample("xss.eml")])
    result = raw_events_process(account=account)
    assert len(result.created) == 1
    stored = Message.objects.get(external_id="xss-6@customer.example").body_html
    for bad in ("<script", "onerror", "onclick", "javascript:", "<iframe", "alert(3)"):
        assert bad not in stored
    assert "Hello" in stored and "click" in stored


def test_malformed_mail_is_dead_lettered_while_the_rest_of_the_batch_lands(account) -> None:
    ids = store(account, [sample("plain.eml"), b"\x00\xff garbage\n\x01", sample("nested.eml"),
                          b"Subject: no sender\n\nhello\n", sample("broken_charset.eml")])  # fmt: skip
    result = raw_events_process(account=account)
    assert len(result.created) == 3 and result.dead == 2
    statuses = dict(RawEvent.objects.filter(pk__in=ids).values_list("provider_event_id", "status"))
    assert statuses == {"e0": "processed", "e1": "dead", "e2": "processed", "e3": "dead", "e4": "processed"}
    assert "no headers" in RawEvent.objects.get(provider_event_id="e1").error
    assert "no sender" in RawEvent.objects.get(provider_event_id="e3").error
    assert Message.objects.count() == 3
    nested = Message.objects.get(external_id="nested-4@customer.example")
    assert nested.attachments.count() == 5 and nested.contact is not None
    assert Message.objects.get(external_id="charset-7@customer.example").body_text == "Preis: 100 € für Café"


def test_a_reply_to_our_message_lands_in_the_thread_its_id_encodes(world, account) -> None:
    from contacts.models import ContactIdentity
    from threads.models import Thread

    ContactIdentity.objects.create(contact=world.a1_shared, kind="email", value="ann@customer.example",
                                   normalized="ann@customer.example")  # fmt: skip
    topic = Thread.objects.create(contact=world.a1_shared, topic="Meeting")
    raw = sample("reply_signature.eml").replace(b"tl.31.", f"tl.{topic.pk}.".encode())
    store(account, [raw])
    raw_events_process(account=account)
    message = Message.objects.get(external_id="reply-5@customer.example")
    assert message.thread == topic and message.body_display == "Monday works for me, see you at 10."
    assert message.sent_at < timezone.now()


def test_multipart_without_its_boundary_is_read_as_text(account) -> None:
    raw = mail(BASE, "--WRONG\nContent-Type: text/plain\n\nStill readable.\n--WRONG--\n",
               content_type='multipart/mixed; boundary="RIGHT"')  # fmt: skip
    m = parse(raw, account)
    assert "Still readable." in m.body_text and m.attachments == []
    raw = mail(BASE, "No boundary at all.\n", content_type="multipart/alternative")
    assert parse(raw, account).body_text == "No boundary at all."


def test_odd_message_ids_and_dates_degrade_gracefully(account) -> None:
    m = parse(mail({**BASE, "Message-ID": "bare-token-123", "Date": "Tue, 04 Mar 2025 09:15:00 +9999"}), account)
    assert m.external_id == "bare-token-123" and m.sent_at == RECEIVED
    m = parse(mail({**BASE, "Message-ID": "<>", "In-Reply-To": "<p@x> (Ann's message of Monday)"}), account)
    assert m.external_id.startswith("derived-") and m.provider_thread_key == "p@x"


def test_a_long_body_keeps_every_word_for_display_when_no_quote_is_found(account) -> None:
    text = "A line of an unusually long message.\n" * 5000
    m = parse(mail(BASE, text, content_type="text/plain; charset=utf-8"), account)
    assert m.body_display == m.body_text == text.strip()


def test_mangled_mail_either_reads_or_is_a_normalize_error_never_a_crash(account) -> None:
    """Seeded mutations of every sample (header junk, cut boundaries, stray encoded words, NULs, 8-bit bytes)."""
    import json
    import random

    rng = random.Random(20250304)
    raws = [p.read_bytes() for p in sorted(SAMPLES.glob("*.eml"))]
    tokens = [b"\n", b"=?", b"?=", b"=?utf-8?b?", b"<", b">", b"\x00", b"\xff", b"--", b"boundary=", b";", b'"',
              b"*=", b"%", b"charset=", b"Content-Type: multipart/mixed; boundary=X\n", b"filename*0*=utf-8''%ZZ",
              b":", b"\xe9", b"message/rfc822", b"application/ms-tnef"]  # fmt: skip
    read = refused = 0
    for _ in range(600):
        raw = bytearray(rng.choice(raws))
        for _ in range(rng.randint(1, 12)):
            op, pos = rng.random(), rng.randrange(len(raw) + 1)
            if op < 0.4:
                raw[pos:pos] = rng.choice(tokens)
            elif op < 0.7:
                del raw[pos : pos + rng.randint(1, 20)]
            else:
                raw[pos : pos + 1] = bytes([rng.randrange(256)])
        try:
            m = parse(bytes(raw), account)
        except NormalizeError:
            refused += 1
            continue
        read += 1
        json.dumps(m.meta)
        for text in (m.subject, m.body_text, m.body_html, m.body_display, m.external_id, m.author.name):
            assert "\x00" not in text
            text.encode("utf-8")  # no lone surrogates: PostgreSQL would refuse the row
    assert read > refused > 0


def test_sender_header_stands_in_for_an_unusable_from(account) -> None:
    m = parse(mail({**BASE, "From": "undisclosed", "Sender": "Ann <ann@customer.example>"}), account)
    assert m.author.address == "ann@customer.example"


def test_a_long_references_chain_is_kept_small_in_meta(account) -> None:
    refs = " ".join(f"<r{i}@x>" for i in range(100))
    m = parse(mail({**BASE, "References": refs}), account)
    assert m.provider_thread_key == "r0@x"
    assert len(m.meta["references"]) == 30 and m.meta["references"][:2] == ["r0@x", "r71@x"]
