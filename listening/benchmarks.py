"""`manage.py bench listening --rules R --posts P`: the compiled listening engine beside a regex-per-rule loop.

The world (fixed seed): R rules written the way people write them (brand names, phrases, OR groups of
spellings, NEAR/n, wildcards, NOT exclusions, lang/from/channel/geo/sentiment filters) over a vocabulary of
invented brand names, and P public posts of about 300 characters (tweets and comments: English with some French,
Spanish and German, mentions, hashtags, links, emoji, a little Japanese), about 20% of which name a rule's term.

- ``compile_s``: ``Engine.compile`` of all R rules (parse, one Aho-Corasick automaton), in CPU seconds
  (``compile_wall_s`` too).
- ``engine_posts_per_s``: ``engine.match`` over all P posts on one core (Documents built beforehand, as the
  ingest pipeline builds them from stored posts), per second of this process's CPU time: the machines these run
  on are shared, and wall time would also count the neighbours (``engine_wall_posts_per_s`` is given too). The
  language model and VADER are loaded before timing, as a worker has them loaded.
- ``regex_loop_posts_per_s``: the naive way, one ``re`` pattern per rule (``oracle.regex_for``) searched in each
  post's folded text, on a sample of posts measured in the same run (it is thousands of times slower, so the
  sample runs for a few seconds of CPU time); ``ratio`` = engine / regex loop.
- ``mismatches_vs_oracle``: posts of a sample whose matches (rule ids, terms, spans) differ from the slow
  reference evaluator's (``oracle.oracle_match``). Must be 0.
- ``e2e_posts_per_s``: ``listening.services.posts_ingest`` in batches (store the posts, match, store the
  mentions), with the R rules stored as ListeningRule rows. Everything it stores is rolled back at the end.
"""

from __future__ import annotations

import datetime as dt
import gc
import random
import time
from typing import Any

from django.core.management.base import CommandParser
from django.db import transaction
from django.utils import timezone

from crm.bench import Benchmark, register
from listening.query import Document, Engine, RuleSpec, sentiment
from listening.query.oracle import Oracle, regex_for
from listening.query.parser import literal_terms, parse_cache_clear
from listening.query.text import detect_lang, fold

SEED = 20260611
ORACLE_SAMPLE = 2_000
REGEX_SECONDS = 4.0  # the regex loop runs for about this long (at least 5 posts)
E2E_BATCH = 5_000  # as the threads ingest benchmark

_SYLLABLES = [
    "ka", "ko", "zu", "vex", "ra", "ne", "lo", "tri", "qua", "mo", "pex", "dyn", "zor", "ul", "ix", "ar", "ba", "ce",
    "di", "fo", "gu", "hy", "ja", "ki", "lu", "my", "no", "py", "ro", "sy", "tu", "vo", "wy", "xa", "zy", "bri",
    "cla", "dro", "flo", "gri", "klo", "pra", "stu", "vra", "zen", "tor", "lex", "nix", "sol", "ver", "dax", "mir",
    "fen",
]  # fmt: skip
_PRODUCTS = [
    "app", "support", "cloud", "card", "bank", "pay", "store", "air", "mobile", "energy", "bikes", "shoes", "coffee",
    "labs", "studio",
]  # fmt: skip
_ISSUES = ["refund", "cancel", "broken", "outage", "scam", "delay", "crash", "slow", "expensive", "rude"]
_PRAISE = ["love", "great", "amazing", "thanks", "awesome", "helpful", "fast"]
_EXCLUDE = ["job", "jobs", "hiring", "career", "careers", "giveaway"]
_FILLER = [
    "the", "a", "to", "and", "of", "in", "is", "it", "you", "that", "for", "on", "with", "this", "was", "have",
    "are", "be", "at", "not", "but", "just", "so", "my", "your", "we", "they", "all", "what", "can", "like", "get",
    "about", "out", "one", "up", "if", "more", "time", "now", "people", "when", "there", "would", "do", "how", "new",
    "day", "good", "really", "today", "know", "think", "make", "want", "going", "back", "still", "need", "see",
    "way", "much", "only", "even", "last", "year", "week", "first", "work", "home", "after", "never", "right",
    "because", "better", "thing", "things", "always", "someone", "every", "again", "feel", "best", "since", "tried",
    "waiting", "order", "ordered", "package", "delivery", "customer", "service", "phone", "call", "email", "account",
    "update", "price", "team", "store", "online", "morning", "night", "weekend", "friends", "family", "city",
    "weather", "traffic", "game", "music", "movie", "coffee", "lunch", "dinner", "finally", "honestly", "literally",
    "seriously", "maybe", "probably", "anyone", "another", "around", "between", "through", "without",
]  # fmt: skip
_FOREIGN = [
    "très", "bien", "déjà", "été", "café", "garçon", "façon", "où", "voilà", "mañana", "señor", "niño", "año",
    "pingüino", "über", "schön", "grüße", "straße", "danke", "müde", "français", "español", "größe",
]  # fmt: skip
_DECOR = ["😀", "😡", "🔥", "👍", "❤️", "🙄", "!!", "?", "...", "#monday", "#tech", "@support", "https://t.co/x1Yz"]
_JAPANESE = ["東京でコーヒーを飲んだ", "今日はいい天気ですね", "新しいアプリを使ってみた"]
_CHANNELS = ("twitter", "facebook", "blog", "blog_comment")
_LANGS = ("en", "en", "en", "fr", "es", "de", "")


def _brand_names(n: int, rng: random.Random) -> list[str]:
    """``n`` distinct invented brand names, none of them an ordinary word of the posts."""
    taken = set(_FILLER) | set(_PRODUCTS) | set(_ISSUES) | set(_PRAISE) | set(_EXCLUDE) | set(_FOREIGN)
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
        if len(name) >= 5 and name not in seen and name not in taken:
            seen.add(name)
            names.append(name)
    return names


def generate_rules(count: int, rng: random.Random) -> list[RuleSpec]:
    brands = _brand_names(count * 2, rng)
    specs = []
    for i in range(count):
        brand, other = brands[2 * i], brands[2 * i + 1]
        r = rng.random()
        if r < 0.22:
            query = brand
        elif r < 0.32:
            query = f'"{brand} {rng.choice(_PRODUCTS)}"'
        elif r < 0.46:
            query = f'({brand} OR {other} OR "{brand} {rng.choice(_PRODUCTS)}")'
        elif r < 0.56:
            query = f"{brand} NEAR/{rng.randint(3, 8)} ({' OR '.join(rng.sample(_ISSUES, 3))})"
        elif r < 0.62:
            query = f"{brand[: max(4, len(brand) - 2)]}*"
        elif r < 0.66:
            query = f"{brand} AND {rng.choice(_ISSUES)[:4]}*"
        elif r < 0.76:
            query = f"{brand} AND NOT ({' OR '.join(rng.sample(_EXCLUDE, 3))})"
        elif r < 0.81:
            query = f"{brand} lang:{rng.choice(['en', 'fr', 'es'])}"
        elif r < 0.86:
            query = f"({brand} OR {other}) AND sentiment:negative"
        elif r < 0.90:
            query = f"{brand} channel:{rng.choice(_CHANNELS)}"
        elif r < 0.93:
            query = f"{brand} from:customers"
        elif r < 0.96:
            query = f"{brand} geo:({rng.uniform(-60, 60):.2f},{rng.uniform(-150, 150):.2f},{rng.choice([25, 50, 200])})"
        else:
            query = f'"{brand} {rng.choice(_PRODUCTS)}" ({" OR ".join(rng.sample(_PRAISE, 2))}) NOT from:@{other}'
        specs.append(RuleSpec(rule_id=i + 1, query=query))
    return specs


def _mention_of(spec: RuleSpec, rng: random.Random) -> str:
    """Words a post about this rule would contain: its terms, in varied case, close together."""
    terms = [t.rstrip("*") + ("ing" if t.endswith("*") else "") for t in literal_terms(spec.query)]
    picked = rng.sample(terms, min(len(terms), rng.randint(1, 2)))
    if rng.random() < 0.3:
        picked = [t.upper() if rng.random() < 0.5 else t.title() for t in picked]
    return f" {rng.choice(_FILLER)} ".join(picked)


def generate_posts(count: int, specs: list[RuleSpec], rng: random.Random, *, hit_rate: float = 0.2) -> list[Document]:
    docs = []
    for i in range(count):
        words: list[str] = []
        length = 0
        target = rng.randint(240, 340)
        while length < target:
            r = rng.random()
            word = (
                rng.choice(_FILLER) if r < 0.86 else rng.choice(_FOREIGN) if r < 0.93 else rng.choice(_DECOR)
            )  # fmt: skip
            words.append(word)
            length += len(word) + 1
        if rng.random() < 0.02:
            words.insert(rng.randrange(len(words)), rng.choice(_JAPANESE))
        if specs and rng.random() < hit_rate:
            words.insert(rng.randrange(len(words)), _mention_of(rng.choice(specs), rng))
        text = " ".join(words)
        text = text[0].upper() + text[1:] + rng.choice([".", "!", "?", " 🙄", ""])
        located = rng.random() < 0.2
        docs.append(
            Document(
                text=text, kind="post", channel=rng.choice(_CHANNELS), source_id=1, lang=rng.choice(_LANGS),
                author_handle=f"user{rng.randrange(50_000)}", author_is_customer=rng.random() < 0.1,
                author_contact_id=rng.randrange(1, 1000) if rng.random() < 0.1 else None,
                latitude=rng.uniform(-60, 60) if located else None,
                longitude=rng.uniform(-150, 150) if located else None,
                extra={"external_id": f"bench-{i}"},
            )
        )  # fmt: skip
    return docs


def _copy(doc: Document) -> Document:
    return Document(
        text=doc.text, kind=doc.kind, channel=doc.channel, source_id=doc.source_id, lang=doc.lang,
        author_handle=doc.author_handle, author_contact_id=doc.author_contact_id,
        author_is_customer=doc.author_is_customer, latitude=doc.latitude, longitude=doc.longitude,
    )  # fmt: skip


def _regex_loop(specs: list[RuleSpec], docs: list[Document], seconds: float) -> tuple[float, int]:
    patterns = [regex_for(spec.query) for spec in specs]  # compiled before timing, as a regex loop would cache them
    done = 0
    started = time.process_time()
    for doc in docs:
        folded = fold(doc.text)
        for pattern in patterns:
            pattern.match(folded)
        done += 1
        if done >= 5 and time.process_time() - started > seconds:
            break
    return done / (time.process_time() - started), done


def _mismatches(engine: Engine, specs: list[RuleSpec], docs: list[Document]) -> int:
    oracle = Oracle(specs)
    mismatches = 0
    for doc in docs:
        got = [(m.rule_id, m.terms, m.spans) for m in engine.match(_copy(doc))]
        want = [(m.rule_id, m.terms, m.spans) for m in oracle.match(_copy(doc))]
        mismatches += got != want
    return mismatches


def _e2e(specs: list[RuleSpec], docs: list[Document]) -> tuple[float, str]:
    """posts_ingest throughput with the rules stored; everything is rolled back."""
    from accounts.models import User
    from listening.models import ListeningRule, ListeningSource, Mention, Post
    from listening.services import engine_current, engine_reset, posts_ingest, ruleset_bump
    from threads.connectors import Party, PublicPost

    now = timezone.now()
    posts = [
        PublicPost(
            external_id=str(doc.extra["external_id"]), channel=doc.channel, text=doc.text,
            posted_at=now - dt.timedelta(seconds=len(docs) - i), url=f"https://example.com/p/{i}",
            author=Party("twitter", doc.author_handle, doc.author_handle, "from"), lang=doc.lang,
            latitude=doc.latitude, longitude=doc.longitude,
        )
        for i, doc in enumerate(docs)
    ]  # fmt: skip
    note = ""
    with transaction.atomic():
        try:
            owner = User.objects.create(username=f"bench-listening-{SEED}", role=User.Role.ADMIN, is_active=True)
            source = ListeningSource.objects.create(
                name="Bench webhook", slug=f"bench-listening-{SEED}", kind=ListeningSource.Kind.WEBHOOK, owner=owner
            )
            ListeningRule.objects.bulk_create(
                [
                    ListeningRule(
                        name=f"Bench rule {spec.rule_id}", query=spec.query, owner=owner, alert_in_app=False,
                        spike_alerts=False, activity_for="", tag="",
                    )
                    for spec in specs
                ],
                batch_size=5_000,
            )  # fmt: skip
            ruleset_bump()
            engine_current()  # compiled once per worker in production; not part of the per-post cost
            started = time.perf_counter()
            for at in range(0, len(posts), E2E_BATCH):
                with transaction.atomic():  # a savepoint per batch; an ingest task commits each batch
                    posts_ingest(source=source, posts=posts[at : at + E2E_BATCH])
            elapsed = time.perf_counter() - started
            stored = Post.objects.filter(source=source).count()
            mentions = Mention.objects.filter(post__source=source).count()
            note = f"{stored} posts and {mentions} mentions stored, then rolled back"
        finally:
            transaction.set_rollback(True)
    engine_reset()
    return round(len(posts) / elapsed, 1) if elapsed else 0.0, note


def run(*, rules: int = 10_000, posts: int = 100_000, oracle_sample: int = ORACLE_SAMPLE, e2e_posts: int | None = None,
        regex_seconds: float = REGEX_SECONDS, **_: Any) -> dict[str, Any]:  # fmt: skip
    rng = random.Random(SEED)
    specs = generate_rules(rules, rng)
    docs = generate_posts(posts, specs, rng)
    figures: dict[str, Any] = {"rules": rules, "posts": posts}

    # Loaded once per worker in production: the language model (~1 s) and VADER are not part of a post's cost.
    detect_lang("warm up the language model")
    sentiment("warm up")
    # The generated world (P documents in memory at once, which a worker never holds) is moved out of the garbage
    # collector's sight, so its full collections do not bill the engine for scanning the benchmark's own data.
    gc.collect()
    gc.freeze()
    try:
        parse_cache_clear()  # generating the posts parsed many rules: time a cold compile, as a new worker does
        started, cpu_started = time.perf_counter(), time.process_time()
        engine = Engine.compile(specs, version=1)
        figures["compile_s"] = round(time.process_time() - cpu_started, 3)
        figures["compile_wall_s"] = round(time.perf_counter() - started, 3)
        figures["compile_errors"] = len(engine.errors)

        matched = 0
        mentions = 0
        started, cpu_started = time.perf_counter(), time.process_time()
        for doc in docs:
            found = engine.match(doc)
            if found:
                matched += 1
                mentions += len(found)
        cpu = time.process_time() - cpu_started
        wall = time.perf_counter() - started
        engine_rate = len(docs) / cpu if cpu else 0.0
        figures["engine_posts_per_s"] = round(engine_rate, 1)
        figures["engine_wall_posts_per_s"] = round(len(docs) / wall, 1) if wall else 0.0
        figures["posts_matched"] = matched
        figures["mentions"] = mentions

        regex_rate, regex_posts = _regex_loop(specs, [_copy(d) for d in docs[: min(len(docs), 2_000)]], regex_seconds)
        figures["regex_loop_posts_per_s"] = round(regex_rate, 2)
        figures["regex_loop_sample"] = regex_posts
        figures["ratio"] = round(engine_rate / regex_rate, 1) if regex_rate else None

        sample = docs[: min(len(docs), oracle_sample)]
        figures["oracle_sample"] = len(sample)
        figures["mismatches_vs_oracle"] = _mismatches(engine, specs, sample)
    finally:
        gc.unfreeze()

    e2e_docs = docs if e2e_posts is None else docs[:e2e_posts]
    try:
        figures["e2e_posts_per_s"], figures["e2e_note"] = _e2e(specs, e2e_docs)
    except NotImplementedError:
        figures["e2e_posts_per_s"], figures["e2e_note"] = 0.0, "listening.services.posts_ingest is not implemented"
    figures["e2e_posts"] = len(e2e_docs)
    figures["e2e_batch"] = E2E_BATCH
    return figures


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument("--rules", type=int, default=10_000, help="How many rules to generate.")
    parser.add_argument("--posts", type=int, default=100_000, help="How many ~300-character posts to match.")
    parser.add_argument(
        "--oracle-sample", type=int, default=ORACLE_SAMPLE, help="Posts checked against the reference evaluator."
    )
    parser.add_argument("--e2e-posts", type=int, default=None, help="Posts ingested end to end (default: all).")
    parser.add_argument(
        "--regex-seconds", type=float, default=REGEX_SECONDS, help="CPU seconds the regex-per-rule loop runs."
    )


register(
    Benchmark(
        name="listening",
        run=run,
        add_arguments=add_arguments,
        help="Listening engine at scale: compiled automaton vs a regex per rule, oracle check, ingest end to end.",
    )
)
