"""Settings of the demo project. The database is chosen by environment:

QTASKS_DB=sqlite (default), postgres or mysql; QTASKS_DB_NAME overrides the
database name (the tests use it to point worker processes at the test
database).
"""

import os
from pathlib import Path

import django

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "demo-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_qtasks",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "testproject.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

_engine = os.environ.get("QTASKS_DB", "sqlite")
_name = os.environ.get("QTASKS_DB_NAME")
if _engine == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": _name or "qtasks",
            "USER": os.environ.get("PGUSER", "postgres"),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
        }
    }
elif _engine == "mysql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": _name or "qtasks",
            "USER": "root",
            "HOST": "127.0.0.1",
            "PORT": "3306",
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _name or str(BASE_DIR / "db.sqlite3"),
            # Workers and the web process write to one file: wait for the lock.
            "OPTIONS": {"timeout": 30},
        }
    }
    if django.VERSION >= (5, 1):
        # Transactions take the write lock when they begin, so that one that
        # reads, then writes (the admin's delete) waits for it instead of
        # failing at once with "database is locked".
        DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = True
STATIC_URL = "static/"

QTASKS = {
    "BROKER_URL": os.environ.get("QTASKS_BROKER_URL", "django://"),
    "POLL_INTERVAL": 0.2,
    # A key of the project's own: ctx.get_config() returns it too.
    "GREETING": "Hello from settings.QTASKS",
    "USER_KEYS": ["GREETING"],  # declared as such (else the check W001 warns)
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "[%(asctime)s] %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "django_qtasks": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
