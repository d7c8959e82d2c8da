"""Safeguard settings: one module, driven by the environment.

Defaults give the embedded mode (SQLite under var/, local media, Celery tasks run
in-process, email to the console) so `make run` needs no service. Production sets
DATABASE_URL, REDIS_URL, EMAIL_URL, SECRET_KEY and ALLOWED_HOSTS (see .env.example).
"""

import secrets
from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

VAR_DIR = Path(env.str("SAFEGUARD_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """The SECRET_KEY from the environment, else one generated once into var/ and reused."""
    from_env = env.str("SECRET_KEY", default="")
    if from_env:
        return from_env
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI / ReDoc assets served locally: no CDN
    "django_htmx",
    "axes",  # login throttling
    "django_otp",  # two-factor authentication (TOTP), safeguard.core.twofactor
    "django_otp.plugins.otp_totp",
    "csp",  # Content-Security-Policy header
    "safeguard.core",
    "safeguard.groups",
    "safeguard.policies",
    "safeguard.captures",
    "safeguard.logs",
    "safeguard.confide",
    "safeguard.console",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "safeguard.core.middleware.ApiBodySizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",  # request.user.is_verified()
    "safeguard.core.middleware.TwoFactorMiddleware",  # sends unverified staff to set-up / verify
    "safeguard.core.middleware.AuditActorMiddleware",  # who acts, for audit rows written by signals
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "safeguard.core.middleware.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a lockout into the "locked out" page
]

ROOT_URLCONF = "safeguard.urls"
WSGI_APPLICATION = "safeguard.wsgi.application"

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
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
DATABASES["default"].setdefault("ATOMIC_REQUESTS", False)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the in-process worker and the web server write without "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE"}
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Login throttling (django-axes): after AXES_FAILURE_LIMIT failed logins for one username, or from
# one address, further attempts are refused for AXES_COOLOFF_TIME (the admin login too). A
# success resets the count. Axes' backend must come first: it refuses before the password check.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("SAFEGUARD_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("SAFEGUARD_LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one alone triggers the lockout
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "safeguard.core.security.login_lockout_response"
AXES_CLIENT_IP_CALLABLE = "safeguard.core.security.login_client_ip"
AXES_VERBOSE = False
# How many reverse proxies stand in front of Django (1: the bundled nginx; 2: an HTTPS proxy in
# front of it); the login throttle reads the client's address from X-Forwarded-For accordingly.
SAFEGUARD_TRUSTED_PROXIES = env.int("SAFEGUARD_TRUSTED_PROXIES", default=0)
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/console/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env.str("TIME_ZONE", default="Europe/London")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on a missing folder before collectstatic
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Media (screenshots, recordings, thumbnails, PDFs) is never at a public URL: it is served
# only by views that check the staff member's group access (safeguard.core.media).
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "/protected-media/"
# Behind nginx, set to the internal location that maps to MEDIA_ROOT (e.g. /protected-media/)
# so the access-checked view answers with X-Accel-Redirect instead of streaming the file.
SAFEGUARD_X_ACCEL_REDIRECT_PREFIX = env.str("SAFEGUARD_X_ACCEL_REDIRECT_PREFIX", default="")
# Object storage (S3 or an S3-compatible server such as MinIO) for media, when S3_BUCKET is set:
# several web and worker replicas then share the files without a shared disk. The bucket stays
# private (no ACL or policy makes anything public); staff get files only through the access-checked
# views, which stream them from the bucket (safeguard.core.media; docs/deployment.md says why).
S3_BUCKET = env.str("S3_BUCKET", default="")
if S3_BUCKET:
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            # Empty: AWS itself. MinIO and others: their URL, e.g. http://minio:9000.
            "endpoint_url": env.str("S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("S3_REGION", default="") or None,
            # Empty: boto3's usual chain (AWS_* variables, an instance role...).
            "access_key": env.str("S3_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("S3_SECRET_ACCESS_KEY", default="") or None,
            # "path" suits MinIO and most S3-compatible servers; AWS accepts "virtual" too.
            "addressing_style": env.str("S3_ADDRESSING_STYLE", default="path"),
            "signature_version": "s3v4",
            "location": env.str("S3_PREFIX", default=""),
            "default_acl": None,  # the bucket's own (private) setting; never public-read
            "querystring_auth": True,  # any URL the backend makes is signed and expires...
            "querystring_expire": 60,  # ...within a minute (none is handed to browsers today)
            "file_overwrite": False,  # as on disk: a name taken gets a new one, never overwritten
            "object_parameters": {"ServerSideEncryption": env.str("S3_SERVER_SIDE_ENCRYPTION", default="")}
            if env.str("S3_SERVER_SIDE_ENCRYPTION", default="")
            else {},
        },
    }

# Background work. Without REDIS_URL, tasks run in-process (eagerly) after the commit.
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Tests give each session its own queue so concurrent runs on one Redis never take each other's tasks.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="safeguard")
# Redis hands a task whose worker died unacknowledged to another worker after this many seconds
# (it must exceed the longest task). Tests shorten it for a restarted worker, and give each
# session's workers bookkeeping keys of their own (CELERY_UNACKED_KEY), as they get their own queue.
# A Redis host that drops packets (rather than refusing) must not hold a capture request for minutes:
# connecting gives up after a few seconds and the capture's follow-ups are left to the sweep.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
    "socket_connect_timeout": 3,
}
if env.str("CELERY_UNACKED_KEY", default=""):
    CELERY_BROKER_TRANSPORT_OPTIONS.update(
        {
            "unacked_key": env.str("CELERY_UNACKED_KEY"),
            "unacked_index_key": env.str("CELERY_UNACKED_KEY") + "_index",
            "unacked_mutex_key": env.str("CELERY_UNACKED_KEY") + "_mutex",
        }
    )
CELERY_TIMEZONE = TIME_ZONE
# Periodic work, run by `celery beat` (exactly one). Each app adds its own entries here.
CELERY_BEAT_SCHEDULE = {
    # Retention (safeguard.logs.retention): nightly, when nobody is using the console.
    "retention-apply": {"task": "safeguard.logs.tasks.retention_apply", "schedule": crontab(hour=2, minute=15)},
    # Activity event partitions for the coming months (PostgreSQL; safeguard.logs.partitions).
    "event-partitions-ensure": {
        "task": "safeguard.logs.tasks.event_partitions_ensure",
        "schedule": crontab(hour=1, minute=45),
    },
}
# Months of activity event partitions kept created ahead of today (PostgreSQL). Inserts beyond
# them still land (in the DEFAULT partition); the daily task moves them out when it gets there.
SAFEGUARD_EVENT_PARTITIONS_AHEAD = env.int("SAFEGUARD_EVENT_PARTITIONS_AHEAD", default=3)
# Alerts, escalation and offline devices: sweeps every minute. A sweep queued while no worker runs
# expires rather than piling up: the next one does the same work.
_EVERY_MINUTE = {"schedule": 60.0, "options": {"expires": 55}}
CELERY_BEAT_SCHEDULE.update(
    {
        # Alerts of captures stored while Redis was down (safeguard.policies.followups).
        "capture-followups-redispatch": {
            "task": "safeguard.policies.tasks.capture_followups_redispatch",
            **_EVERY_MINUTE,
        },
        # Hourly and daily alert digests, sent when due (safeguard.policies.alerts).
        "alert-digests-send": {"task": "safeguard.policies.tasks.alert_digests_send", **_EVERY_MINUTE},
        # Emails a worker died while sending, once their claim is stale.
        "alert-claims-retry": {"task": "safeguard.policies.tasks.alert_claims_retry", "schedule": 300.0},
        # Escalation of severe captures nobody opened (safeguard.policies.escalation).
        "escalations-send-due": {"task": "safeguard.policies.tasks.escalations_send_due", **_EVERY_MINUTE},
        # Devices gone quiet: the IT email, once per outage (safeguard.groups.offline).
        "devices-offline-check": {"task": "safeguard.groups.tasks.devices_offline_check", **_EVERY_MINUTE},
    }
)

if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="safeguard@localhost")
# Seconds an SMTP step may take before the send fails (and is retried): never wait forever.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=60)
# Alerts: screenshots larger than this are not attached (the email links to the console instead).
SAFEGUARD_ALERT_ATTACHMENT_MAX_BYTES = env.int("SAFEGUARD_ALERT_ATTACHMENT_MAX_BYTES", default=5 * 1024 * 1024)
# The local hour at which daily alert digests go out.
SAFEGUARD_DAILY_DIGEST_HOUR = env.int("SAFEGUARD_DAILY_DIGEST_HOUR", default=7)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "safeguard.core.api.exception_handler",
    # Requests per device token on the agent API (safeguard.core.throttling); past it, 429 + Retry-After.
    "DEFAULT_THROTTLE_RATES": {"agent_device": env.str("SAFEGUARD_AGENT_RATE_LIMIT", default="600/min")},
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Safeguard agent API",
    "DESCRIPTION": "The REST API that Safeguard endpoint agents use to enrol, fetch policy and report.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Agent-facing limits and defaults.
SAFEGUARD_CONSOLE_URL = env.str("SAFEGUARD_CONSOLE_URL", default="http://127.0.0.1:8000/console/")
SAFEGUARD_MAX_EVENTS_PER_BATCH = 1000
SAFEGUARD_MAX_FUTURE_SKEW_SECONDS = env.int("SAFEGUARD_MAX_FUTURE_SKEW_SECONDS", default=300)
# Request body limits per agent endpoint (bytes); larger bodies are refused with 413.
SAFEGUARD_BODY_LIMITS = {
    "/api/v1/agent/events": 8 * 1024 * 1024,
    "/api/v1/agent/captures": 64 * 1024 * 1024,  # recordings go under captures/<id>/recording
    "/api/v1/agent/recordings": 64 * 1024 * 1024,  # recordings staff asked for (record_screen)
    "/api/v1/agent/thumbnail": 2 * 1024 * 1024,
    "/api/v1/agent/": 1024 * 1024,
}
SAFEGUARD_SCREENSHOT_MAX_BYTES = 20 * 1024 * 1024
SAFEGUARD_RECORDING_MAX_BYTES = 64 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# Security: cookies and headers. HTTPS-only flags follow SAFEGUARD_HTTPS (on in production).
HTTPS = env.bool("SAFEGUARD_HTTPS", default=False)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if HTTPS:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # Preloading commits the whole registrable domain (the school's, usually) to HTTPS in every
    # browser, beyond this server's say: a school opts in deliberately, so the deploy check's
    # reminder (W021) is silenced only while it has not.
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
    if not SECURE_HSTS_PRELOAD:
        SILENCED_SYSTEM_CHECKS = ["security.W021"]

# Content-Security-Policy (django-csp, sent by safeguard.core.middleware): no inline script or
# style anywhere, nothing from another origin, no framing. Templates keep behaviour in static
# files (tests/security/test_csp*.py fetch every page to hold that).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "media-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# Sources added under one path prefix only (safeguard.core.middleware). Swagger UI, which we do not
# write, draws its icons as data: images; scripts and styles stay 'self' there too.
SAFEGUARD_CSP_PATH_UPDATES = {"/api/docs/": {"img-src": ["data:"]}}

# Two-factor authentication (TOTP with django-otp; safeguard.core.twofactor). Who must use it:
# "off" (anyone may still turn it on for themselves, and is then asked for it), "privileged"
# (superusers, staff who may use the admin site, and Confide viewers) or "everyone".
SAFEGUARD_2FA_REQUIRED = env.str("SAFEGUARD_2FA_REQUIRED", default="off")
OTP_TOTP_ISSUER = env.str("SAFEGUARD_2FA_ISSUER", default="Safeguard")  # the name authenticator apps show

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
