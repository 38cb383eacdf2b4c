"""Django settings: every value comes from the environment through webapp.envconf's strict helpers."""
from datetime import timedelta
from pathlib import Path

import dj_database_url

from webapp import storage_config
from webapp.envconf import env_bool, env_int, env_ip_address, env_list, env_str, secret_key, var_dir

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = var_dir()

SECRET_KEY = secret_key(VAR_DIR)
DEBUG = env_bool("SLIMFORGE_DEBUG", False)
ALLOWED_HOSTS = env_list("SLIMFORGE_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")

# Served over HTTPS (behind a proxy that terminates TLS and sets X-Forwarded-Proto): secure cookies, redirects to
# HTTPS and HSTS. Off by default: `make run` serves plain HTTP on 127.0.0.1.
HTTPS = env_bool("SLIMFORGE_HTTPS", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SLIMFORGE_HSTS_SECONDS", 31536000, low=0, high=2 * 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = True
CSRF_TRUSTED_ORIGINS = env_list("SLIMFORGE_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from here: no CDN
    "knox",
    "channels",
    "axes",
    "webapp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "webapp.security_headers.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # it answers for a locked-out login
    # Innermost, and synchronous: under ASGI every middleware above then runs in one thread with the view, not each
    # in a hop of its own (bench/load.py); it still refuses hostile input before any view or query sees it.
    "webapp.input_guard.HostileInputMiddleware",
]

ROOT_URLCONF = "webapp.urls"
ASGI_APPLICATION = "webapp.asgi.application"

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
                "webapp.pages.context.event_contract",
            ],
        },
    },
]

# No persistent connections by default: under ASGI (Uvicorn) each request runs in a thread of its own, so a kept
# connection is never reused and piles up until PostgreSQL refuses new clients (bench/load.py met "too many clients").
# Django's documentation says the same; put a pooler (PgBouncer) in front of a busy PostgreSQL instead.
DATABASES = {"default": dj_database_url.parse(
    env_str("DATABASE_URL"), conn_max_age=env_int("SLIMFORGE_DB_CONN_MAX_AGE", 0, low=0, high=3600),
    conn_health_checks=True,
)}
# Every connection starts in UTC (TIME_ZONE below), so Django need not send SET TIME ZONE on each new one: with a
# connection per request, that round trip was part of every request.
DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c timezone=UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
# One prefix for every Redis key Slimforge writes, so test runs and several installs can share a server.
REDIS_PREFIX = env_str("SLIMFORGE_REDIS_PREFIX", "slimforge")

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # channels_redis waits for a socket's messages with a 5-second BZPOPMIN; redis-py 8 gives up reading after 5
        # seconds by default, so under load the two raced and a live page lost its socket (bench/load.py).
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}], "prefix": f"{REDIS_PREFIX}:asgi",
                   "capacity": 1000, "expiry": 30},
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": f"{REDIS_PREFIX}:celery:"}
CELERY_RESULT_BACKEND = None  # results live in PostgreSQL, written by the tasks themselves
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = env_str("SLIMFORGE_DEFAULT_QUEUE", "slimforge")
CELERY_TASK_ACKS_LATE = True
# A pool process killed mid-job (SIGKILL, the OOM killer): its message goes back to the queue instead of being
# acknowledged as failed; the claim and the reaper (webapp.services.recovery) decide whether it runs again.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Sending a task gives up quickly when the broker is down: the message stays in the outbox
# (webapp.services.outbox) and the workers' heartbeats send it once the broker is back, so a submit never hangs.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0.2, "interval_step": 0.2, "interval_max": 0.2}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Logins (the page and the API token endpoint) are rate-limited by django-axes: after AXES_FAILURE_LIMIT failures
# in a row, the account, and separately the address, is locked out for AXES_COOLOFF_TIME; a success resets the count.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("SLIMFORGE_LOGIN_FAILURES", 5, low=1, high=1000)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("SLIMFORGE_LOGIN_LOCKOUT_MIN", 15, low=1, high=24 * 60))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]  # either one, alone, reaching the limit locks it out
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"  # a page in the site's own look, with status 429
# API tokens (django-rest-knox): stored as hashes, expiring, revocable one by one.
API_TOKEN_TTL = timedelta(days=env_int("SLIMFORGE_TOKEN_DAYS", 30, low=1, high=3650))
REST_KNOX = {"TOKEN_TTL": API_TOKEN_TTL, "AUTH_HEADER_PREFIX": "Token", "AUTO_REFRESH": False}
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
# The OpenAPI schema (/api/schema/) and its documentation page (/api/docs/): for signed-in users, assets local.
SPECTACULAR_SETTINGS = {
    "TITLE": "Slimforge API",
    "DESCRIPTION": "Upload models and datasets, run recipes (quantize, prune, distill, parallelize), follow, cancel, "
                   "re-run, delete and download. Authenticate with a token from POST /api/auth/token/ "
                   "(header `Authorization: Token ...`) or the browser's session.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # Its generator's remarks (views it cannot type yet) are no deployment risk: test_api_schema checks the schema.
    "ENABLE_DJANGO_DEPLOY_CHECK": False,
    # Each object's own status names (the generator would otherwise number the enums it cannot tell apart).
    "ENUM_NAME_OVERRIDES": {
        "ExperimentStatusEnum": "webapp.models.Experiment.Status",
        "UploadStatusEnum": "webapp.models.UploadedModel.Status",  # a dataset's are the same three
        "ChainStatusEnum": "webapp.models.Chain.Status",
    },
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "webapp.staticfinders.PlotlyFinder",
]
STATIC_ROOT = VAR_DIR / "static"
# Uvicorn does not serve static files; in the one-machine setup the ASGI app serves them itself.
SERVE_STATIC = env_bool("SLIMFORGE_SERVE_STATIC", True)

# Uploads and artifacts: the local MEDIA_ROOT, or an S3-compatible object store (SLIMFORGE_STORAGE=s3 and its
# SLIMFORGE_S3_* settings, webapp.storage_config), so that workers on other machines need no shared disk.
MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "/media-not-served/"  # files are served only through owner-checked download views
STORAGES = {
    "default": storage_config.default_storage(),
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# A worker keeps copies of the stored models and dataset sources its jobs read, by sha256, so a second job on the
# same file needs no second download (tasks.file_cache); at most WORKER_CACHE_BYTES, the least recently used go.
WORKER_CACHE_DIR = storage_config.worker_cache_dir(VAR_DIR)
WORKER_CACHE_BYTES = storage_config.worker_cache_bytes()
MAX_UPLOAD_BYTES = env_int("SLIMFORGE_MAX_UPLOAD_MB", 512, low=1, high=65536) * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024 * 1024

# Limits for the throwaway subprocess that deserializes a model.
SANDBOX_MEMORY_MB = env_int("SLIMFORGE_SANDBOX_MEMORY_MB", 8192, low=256, high=1024 * 1024)
SANDBOX_INSPECT_SECONDS = env_int("SLIMFORGE_INSPECT_SECONDS", 120, low=5, high=86400)
SANDBOX_RUN_SECONDS = env_int("SLIMFORGE_RUN_SECONDS", 3600, low=10, high=7 * 86400)
# A cancelled job is asked to stop at its next step; one that has not ended this many seconds later is killed.
CANCEL_GRACE_S = env_int("SLIMFORGE_CANCEL_GRACE_S", 10, low=1, high=600)
# Redis hands an unacknowledged message to another worker after this long: longer than any job may run, so a job
# still running is never delivered twice (and the claim refuses a run whose worker still reports it anyway).
# Each recipe's hard time limit (the sandbox kills the job), SLIMFORGE_RUN_SECONDS_<RECIPE> or SLIMFORGE_RUN_SECONDS.
# A job is first asked to stop at its next step at its soft limit, a tenth of the hard limit earlier (at most
# SOFT_LIMIT_BEFORE_MAX_S), and then fails saying so (tasks.entrypoints); test_time_limits checks every recipe is here.
RUN_SECONDS_BY_RECIPE = {
    recipe: env_int(f"SLIMFORGE_RUN_SECONDS_{recipe.upper()}", SANDBOX_RUN_SECONDS, low=10, high=7 * 86400)
    for recipe in ("quantize", "prune", "distill", "parallelize")
}

SOFT_LIMIT_BEFORE_MAX_S = 300

CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] = max(RUN_SECONDS_BY_RECIPE.values()) + 3600
# How many times a job may be started when its worker keeps dying under it; then it fails with "worker lost".
JOB_ATTEMPTS = env_int("SLIMFORGE_JOB_ATTEMPTS", 3, low=1, high=10)
# A running job no live worker has reported for this long (and at least three heartbeats) is lost: queued again
# or failed. Generous, so a worker whose beats are late (a busy machine, a slow database) keeps its jobs.
RUN_LOST_AFTER_S = env_int("SLIMFORGE_RUN_LOST_AFTER_S", 30, low=2, high=3600)
# Fine-tuning checkpoints of running experiments: a job redelivered after its worker died resumes from them.
CHECKPOINT_ROOT = VAR_DIR / "checkpoints"
# Fair use. Each user has at most USER_MAX_RUNNING experiments handed to the workers at once (running or waiting
# in the broker); the rest wait in the outbox and are sent as theirs finish, so one user's long queue never stands
# in front of everyone else's jobs. A submit beyond USER_MAX_QUEUED unfinished experiments is refused.
USER_MAX_RUNNING = env_int("SLIMFORGE_USER_MAX_RUNNING", 2, low=1, high=10000)
USER_MAX_QUEUED = env_int("SLIMFORGE_USER_MAX_QUEUED", 100, low=1, high=1000000)
TELEMETRY_INTERVAL_S = env_int("SLIMFORGE_TELEMETRY_MS", 1000, low=200, high=10000) / 1000
# Each worker writes a heartbeat row this often; after this many missed beats the workers page says offline.
WORKER_HEARTBEAT_S = env_int("SLIMFORGE_HEARTBEAT_MS", 5000, low=200, high=60000) / 1000
# The memory (MiB) a worker lets its jobs have at most, below what its device has free (0: all that is free). A job
# whose estimate is larger is left for a bigger device (tasks.placement).
WORKER_MEMORY_MB = env_int("SLIMFORGE_WORKER_MEMORY_MB", 0, low=0, high=64 * 1024 * 1024) or None
WORKER_OFFLINE_AFTER_MISSED = 3
# Multi-host jobs (Experiment.hosts > 1): the address other workers reach this worker's jobs at. Setting it is the
# operator's consent: a multi-host job's sandbox shares this machine's network (its ranks must reach their peers),
# so set it only on workers of a private cluster network. Empty: this worker takes no part in multi-host jobs.
WORKER_HOST_ADDRESS = env_ip_address("SLIMFORGE_WORKER_HOST_ADDRESS")
# How long the first host of a multi-host job waits for the others to join before the job fails.
HOSTS_WAIT_S = env_int("SLIMFORGE_HOSTS_WAIT_S", 300, low=5, high=24 * 3600)
MAX_HOSTS = 16

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
