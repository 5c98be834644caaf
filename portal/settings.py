"""Settings for the Device Owner Portal.

One module, driven by environment variables (each named exactly as the setting it feeds).
The defaults run the embedded development set-up: SQLite and a filesystem Celery broker.
"""

import os
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.getenv("PORTAL_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def envbool(name, default):
    value = os.getenv(name, default)
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def envint(name, default):
    value = os.getenv(name, default)
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None


def envsecret(name, default=""):
    """Reads NAME, or the file NAME_FILE points to (container secrets)."""
    path = os.getenv(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return os.getenv(name, default)


def envlist(name, default=""):
    return [item.strip() for item in os.getenv(name, default).split(",") if item.strip()]


DEV_SECRET = "dev-only-secret-do-not-use-in-production"
DEV_PEPPER = "dev-only-pepper-do-not-use-in-production"
DEV_FERNET_KEY = "ZGV2LW9ubHktZmVybmV0LWtleS1ub3QtZm9yLXByb2Q="  # base64 of 32 bytes, development only

# Off unless turned on: a deployment that forgets it gets no debug pages and refuses the
# development secrets below. `make run` and the test suite (tests/settings.py) turn it on.
DEBUG = envbool("DEBUG", "False")
SECRET_KEY = envsecret("SECRET_KEY", DEV_SECRET)
# Earlier keys still accepted for signatures while a new SECRET_KEY takes over (docs/operations.md).
SECRET_KEY_FALLBACKS = envlist("SECRET_KEY_FALLBACKS")
# Keyed digests of factory keys, PINs, claim codes and tokens use this pepper (HMAC-SHA256).
SECRET_PEPPER = envsecret("SECRET_PEPPER", DEV_PEPPER)
# Comma-separated Fernet keys; the first encrypts, all decrypt (rotation with MultiFernet).
FERNET_KEYS = envlist("FERNET_KEYS") or [DEV_FERNET_KEY]

# `makemigrations` compares the models with the migration files: it reads no secret, touches no data
# and serves nothing, so it runs on a bare checkout too (the checks before a commit call it so).
_ONLY_COMPARES_MIGRATIONS = Path(sys.argv[0]).name == "manage.py" and sys.argv[1:2] == ["makemigrations"]

if not DEBUG and not _ONLY_COMPARES_MIGRATIONS:
    weak = [
        name
        for name, value, dev in (
            ("SECRET_KEY", SECRET_KEY, DEV_SECRET),
            ("SECRET_PEPPER", SECRET_PEPPER, DEV_PEPPER),
            ("FERNET_KEYS", FERNET_KEYS[0], DEV_FERNET_KEY),
        )
        if value == dev
    ]
    if weak:
        raise ImproperlyConfigured(f"DEBUG is off but {', '.join(weak)} still has its development value")

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
PORTAL_BASE_URL = os.getenv("PORTAL_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", PORTAL_BASE_URL)

# White label
PORTAL_NAME = os.getenv("PORTAL_NAME", "Device Owner Portal")
PORTAL_LOGO_URL = os.getenv("PORTAL_LOGO_URL", "")
PORTAL_SUPPORT_EMAIL = os.getenv("PORTAL_SUPPORT_EMAIL", "support@example.com")
PORTAL_PRIMARY_COLOR = os.getenv("PORTAL_PRIMARY_COLOR", "#0b6bcb")

INSTALLED_APPS = [
    "portal.apps.PortalAdminConfig",  # django.contrib.admin, with the log-in limited
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "rest_framework",
    "drf_spectacular",
    "portal",
    "devices",
    "apps",
    "claiming",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "portal.middleware.SecurityHeadersMiddleware",
    "portal.middleware.NoStoreForAccountsMiddleware",
    "portal.middleware.RefuseNulInAddressMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

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
                "portal.context_processors.branding",
                "claiming.context_processors.claim_url",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.getenv("DATABASE_URL", f"sqlite:///{VAR_DIR / 'portal.sqlite3'}"),
        conn_max_age=envint("DATABASE_CONN_MAX_AGE", "60"),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while the worker writes; the timeout rides out short write locks.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The device protocol's hot statements are prepared (devices.sql.fetchone):
    # planning the check-in costs PostgreSQL more than running it. The ORM's client-side cursors
    # never prepare, whatever this says. A pooler in transaction mode needs prepared-statement
    # support (PgBouncer 1.22+, max_prepared_statements); without it, DATABASE_PREPARED_STATEMENTS=False.
    DATABASES["default"]["OPTIONS"] = {
        "prepare_threshold": 5 if envbool("DATABASE_PREPARED_STATEMENTS", "True") else None
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.getenv("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            # Degrades to an empty cache while Redis is unreachable (portal/cache.py); short timeouts
            # so an outage costs a request a second at most, not a hang.
            "BACKEND": "portal.cache.ResilientRedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    # The embedded default shares rate-limit counters between its processes through files.
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": VAR_DIR / "cache"}
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

# django-allauth: email is the login and must be verified before claiming.
ACCOUNT_LOGIN_METHODS = {"email"}
# Keeps a QR claim's `next` in the verification link, for phones that open it in another browser.
ACCOUNT_ADAPTER = "claiming.adapter.AccountAdapter"
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_USER_MODEL_USERNAME_FIELD = "username"
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_CHANGE_EMAIL = True
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_RATE_LIMITS = {
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip",
    "confirm_email": "1/3m/key",
    "reset_password": "20/m/ip,5/m/key",
}
ACCOUNT_EMAIL_SUBJECT_PREFIX = f"[{PORTAL_NAME}] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = PORTAL_BASE_URL.split(":", 1)[0]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "devices:list"
ACCOUNT_LOGOUT_REDIRECT_URL = "home"

EMAIL_BACKEND = os.getenv("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.getenv("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", "25")
EMAIL_HOST_USER = os.getenv("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = envsecret("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", "False")
DEFAULT_FROM_EMAIL = os.getenv("DEFAULT_FROM_EMAIL", f"{PORTAL_NAME} <noreply@example.com>")

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.getenv("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "/media/"
# DATA_UPLOAD_MAX_MEMORY_SIZE keeps Django's 2.5 MB: it caps form fields, not uploaded files (the
# bulk-import CSV streams to disk past FILE_UPLOAD_MAX_MEMORY_SIZE), and any larger cap would let
# anyone make the server buffer that much. The device protocol caps its own bodies.

# Security headers. Production (DEBUG off) turns on everything `check --deploy` asks for.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", str(not DEBUG))
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", str(not DEBUG))
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", str(not DEBUG))
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", "0" if DEBUG else "31536000")
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", str(not DEBUG))
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", str(not DEBUG))
# Behind a TLS-terminating proxy: the header that proxy sets, e.g. "HTTP_X_FORWARDED_PROTO".
if os.getenv("SECURE_PROXY_SSL_HEADER"):
    SECURE_PROXY_SSL_HEADER = (os.environ["SECURE_PROXY_SSL_HEADER"], "https")
# The client address of device requests: REMOTE_ADDR unless a trusted proxy sets this header.
TRUSTED_PROXY_IP_HEADER = os.getenv("TRUSTED_PROXY_IP_HEADER", "")
# Applied by portal.middleware.SecurityHeadersMiddleware; no inline scripts anywhere.
CONTENT_SECURITY_POLICY = os.getenv(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
)

# Celery. The embedded default uses kombu's filesystem transport: no broker server to run.
CELERY_BROKER_URL = os.getenv("CELERY_BROKER_URL", REDIS_URL or "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {"visibility_timeout": 3600}
    if CELERY_BROKER_URL.startswith("redis")
    else {
        "data_folder_in": str(VAR_DIR / "broker"),
        "data_folder_out": str(VAR_DIR / "broker"),
        "processed_folder": str(VAR_DIR / "broker-processed"),
        "control_folder": str(VAR_DIR / "broker-control"),
        "store_processed": False,
    }
)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Well under the broker's visibility timeout, so a slow task is killed before Redis redelivers it.
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", "False")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A broker outage must not hang a request: publishing gives up fast and the beat task catches up.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "relay-outbox": {"task": "devices.tasks.relay_outbox", "schedule": 30.0},
    "expire-commands": {"task": "devices.tasks.expire_commands", "schedule": 60.0},
    "send-due-deliveries": {"task": "apps.tasks.deliveries_send_due", "schedule": 30.0},
    "mark-stale-devices": {"task": "devices.tasks.mark_stale_devices", "schedule": 60.0},
    "prune-old-data": {"task": "devices.tasks.prune_old_data", "schedule": 24 * 3600.0},
    # Writes down the end of support grants whose time ran out (access already ignores them): no countdowns.
    "expire-support-grants": {"task": "devices.tasks.expire_support_grants", "schedule": 60.0},
}

# Webhooks: only https to public addresses unless explicitly allowed (development and tests).
WEBHOOK_ALLOW_PRIVATE_TARGETS = envbool("WEBHOOK_ALLOW_PRIVATE_TARGETS", "False")
WEBHOOK_TIMEOUT_SECONDS = envint("WEBHOOK_TIMEOUT_SECONDS", "15")

# Device protocol
DEVICE_POLL_BASE_SECONDS = envint("DEVICE_POLL_BASE_SECONDS", "5")
DEVICE_CHECKIN_MAX_BYTES = 64 * 1024
# On PostgreSQL a check-in commits without waiting for its WAL flush (synchronous_commit=off for
# that statement only): a database crash can lose the last fraction of a second of check-ins,
# which their devices repeat a minute later; nothing is ever half-written. True waits for the flush.
DEVICE_CHECKIN_SYNCHRONOUS_COMMIT = envbool("DEVICE_CHECKIN_SYNCHRONOUS_COMMIT", "False")
# Requests a minute on the device endpoints, per device and per client address (a factory NAT).
DEVICE_RATE_LIMIT_PER_DEVICE = envint("DEVICE_RATE_LIMIT_PER_DEVICE", "60")
DEVICE_RATE_LIMIT_PER_IP = envint("DEVICE_RATE_LIMIT_PER_IP", "1200")
READING_RETENTION_DAYS = envint("READING_RETENTION_DAYS", "30")

# MQTT beside HTTP (docs/operations.md, "MQTT"). `manage.py mqtt_broker_config` writes the broker's
# files into MQTT_DIR; the bridge (`manage.py mqtt_bridge`) and the command publisher reach the broker
# on its bridge listener (MQTT_HOST:MQTT_PORT) with their own credential. No MQTT_BRIDGE_PASSWORD: MQTT
# is off and commands wait for the device's HTTP check-in, as before.
MQTT_DIR = Path(os.getenv("MQTT_DIR", VAR_DIR / "mqtt"))
MQTT_HOST = os.getenv("MQTT_HOST", "127.0.0.1")
MQTT_PORT = envint("MQTT_PORT", "1883")
MQTT_TLS_PORT = envint("MQTT_TLS_PORT", "8883")
MQTT_BRIDGE_USERNAME = os.getenv("MQTT_BRIDGE_USERNAME", "portal-bridge")
MQTT_BRIDGE_PASSWORD = envsecret("MQTT_BRIDGE_PASSWORD")
# Names (and addresses) devices use to reach the TLS listener: the broker's server certificate names them.
MQTT_SERVER_NAMES = envlist("MQTT_SERVER_NAMES", "localhost,127.0.0.1")
# What provisioning tells devices (mqtts://host:port); empty: the answer names no MQTT endpoint.
MQTT_DEVICE_URL = os.getenv("MQTT_DEVICE_URL", "")

# Integrator API calls per application ("<n>/second|minute|hour|day"), counted on the shared cache.
API_THROTTLE_RATE = os.getenv("API_THROTTLE_RATE", "600/minute")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "portal.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": f"{PORTAL_NAME} API",
    "DESCRIPTION": "Device protocol and integrator API of the Device Owner Portal.",
    "VERSION": "1.0.0",
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"DeviceStatusEnum": "devices.models.DeviceStatus"},
    "WEBHOOKS": ["apps.api.event_schema.EVENT_WEBHOOK"],
}

LOG_LEVEL = os.getenv("LOG_LEVEL", "INFO")
# Off (`make run` turns it off): the development server leaves out the devices' successful requests,
# a line every few seconds per device that would bury everything else.
LOG_DEVICE_REQUESTS = envbool("LOG_DEVICE_REQUESTS", "True")
# /healthz shows its figures to staff and to `Authorization: Bearer <HEALTHZ_TOKEN>`; others hear ok or not.
HEALTHZ_TOKEN = envsecret("HEALTHZ_TOKEN")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "portal.logging.JsonFormatter"}},
    "filters": {
        "redact_secrets": {"()": "portal.logging.RedactSecretsFilter"},
        "quiet_device_requests": {"()": "portal.logging.QuietDeviceRequestsFilter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["redact_secrets"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # runserver's request lines: through the redacting handler, not Django's own.
        "django.server": {
            "handlers": ["console"],
            "level": "INFO",
            "propagate": False,
            "filters": [] if LOG_DEVICE_REQUESTS else ["quiet_device_requests"],
        },
    },
}

# Container health checks speak plain http to the process itself.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
