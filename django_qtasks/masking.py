"""Secrets masked out of settings that are shown: logs, task code, pages.

``qtasks_settings`` keeps the real values for the code that needs them;
what is shown goes through :func:`masked` first.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

#: Keys whose values are secrets, whatever they hold (PASSWORD, SECRET_KEY, API_TOKEN,
#: AWS_ACCESS_KEY_ID, ...); KEY only as a word of its own, so that USER_KEYS is shown.
SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|CREDENTIAL|(?:^|_)KEY(?:_|$)", re.IGNORECASE)


def mask_url(text: str) -> str:
    """``text`` with the password of a URL replaced by ``***``; other text as it is."""
    if "@" not in text:
        return text
    try:
        parts = urlsplit(text)
        password = parts.password
    except ValueError:  # not a URL after all (e.g. an unclosed "[")
        return text
    if not password:
        return text
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


def masked(value: Any, name: str = "") -> Any:
    """A copy of ``value`` to show: secret keys' values and URL passwords masked,
    through nested dicts, lists and tuples."""
    if name and SECRET_NAME.search(name) and value not in (None, ""):
        return MASK
    if isinstance(value, str):
        return mask_url(value)
    if isinstance(value, dict):
        return {
            key: masked(item, key if isinstance(key, str) else "") for key, item in value.items()
        }
    if isinstance(value, list):
        return [masked(item) for item in value]
    if isinstance(value, tuple):
        return tuple(masked(item) for item in value)
    return value
