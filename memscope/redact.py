"""Masking for anything printed: credentials inside URLs, and the secrets memscope knows, in any text.

Backends `remember` the keys and passwords they are given; `scrub` then hides them in text copied
from a server's error body (some servers echo the key) before it reaches an error, a job record or
a log line.
"""

from __future__ import annotations

import logging
import re
import threading

__all__ = ["MASK", "mask_url", "remember", "scrub", "scrubbed_logger"]

MASK = "***"
_MIN_SECRET = 10  # shorter values would mask ordinary words (a model named after a test key)
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*)(?P<password>:[^@/\s]*)?@")
_known: set[str] = set()
_lock = threading.Lock()


def mask_url(text: str) -> str:
    """`scheme://user:secret@host` becomes `scheme://user:***@host`; a bare `scheme://token@` becomes `***@`."""

    def hide(match: re.Match[str]) -> str:
        if match.group("password") is None:
            return f"{match.group('scheme')}{MASK}@"
        return f"{match.group('scheme')}{match.group('user')}:{MASK}@"

    return _USERINFO.sub(hide, text)


def remember(*secrets: str | None) -> None:
    """Note secrets (API keys, passwords, URLs with credentials) that `scrub` must hide from now on."""
    found: set[str] = set()
    for value in secrets:
        if not value:
            continue
        if "://" not in value:
            found.add(value)
        for match in _USERINFO.finditer(value):  # a URL itself is no secret; its credentials are
            password = match.group("password")
            found.add(password[1:] if password else match.group("user"))
    with _lock:
        _known.update(s for s in found if len(s) >= _MIN_SECRET)


def scrub(text: str) -> str:
    """`text` with URL credentials masked and every remembered secret replaced by `***`."""
    text = mask_url(str(text))
    with _lock:
        known = sorted(_known, key=len, reverse=True)  # a key that contains another goes first
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class _ScrubFilter(logging.Filter):
    """Scrubs a log record's message and traceback before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = scrub(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        return True


def scrubbed_logger(name: str) -> logging.Logger:
    """`logging.getLogger(name)` whose records (tracebacks too) never carry a remembered secret."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, _ScrubFilter) for f in logger.filters):
        logger.addFilter(_ScrubFilter())
    return logger
