"""The one place that decides what is sensitive and how it may be shown.

Sensitivity goes by where a value came from first (a secret, a `${VAR}` fill, a live value the
manifest does not declare, a probe header) and by its name or shape last. Masking happens when
the plan is built, and every output stream and written file passes through `scrub` as well, so
a platform error that echoes a value is masked too.
"""

from __future__ import annotations

import re
import threading
from functools import cache
from typing import Any, TextIO
from urllib.parse import urlsplit

from safedeploy.model import EnvValue, SecretRef

MASK = "(sensitive)"

# Masking is cheap and a leak is not, so these err on the side of masking.
_SENSITIVE_WORDS = (
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "TOKEN",
    "CREDENTIAL",
    "PRIVATE_?KEY",
    "API_KEY",
    "APIKEY",
)
_SENSITIVE_SUFFIXES = ("_KEY", "_PASS")
_SENSITIVE_NAME = re.compile(
    "|".join([*_SENSITIVE_WORDS, *(rf"{suffix}\Z" for suffix in _SENSITIVE_SUFFIXES)])
)
_NOT_ALNUM = re.compile(r"[^A-Z0-9]")

_CREDENTIAL = re.compile(
    r"""
      (?:sk|rk)_(?:live|test)_[0-9A-Za-z]{8,}          # Stripe secret / restricted keys
    | \bAKIA[0-9A-Z]{16}\b                             # AWS access key id
    | -----BEGIN\ [A-Z0-9 ]*PRIVATE\ KEY-----          # PEM private key
    | \bgh[pousr]_[0-9A-Za-z]{30,}                     # GitHub tokens
    | \bgithub_pat_[0-9A-Za-z_]{22,}                   # GitHub fine-grained tokens
    | \bxox[bpas]-[0-9A-Za-z-]{10,}                    # Slack tokens
    | \beyJ[0-9A-Za-z_-]+\.eyJ[0-9A-Za-z_-]+\.         # JWTs (header.payload.)
    | \bAIza[0-9A-Za-z_-]{35}                          # Google API keys
    | \bBearer\s+\S                                    # an Authorization header's token
    | \b(?:password|passwd|pwd)=[^\s&;]                # libpq DSNs, query strings
    """,
    re.VERBOSE,
)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s,;]+")


@cache
def is_sensitive_name(name: str) -> bool:
    """*SECRET*, *PASSWORD*, *TOKEN*, *_KEY (case-insensitive), and close kin.

    Cached: merge, lint and the renderers ask about the same names. Only names are cached.
    """
    return _SENSITIVE_NAME.search(_NOT_ALNUM.sub("_", name.upper())) is not None


def looks_like_credential(value: str) -> bool:
    """sk_live_/sk_test_ keys, AKIA access keys, PEM blocks, URLs with an inline password..."""
    if _CREDENTIAL.search(value):
        return True
    # `://` first: most values hold no URL, and the URL pattern is slow on long ones.
    return "://" in value and any(_has_password(url) for url in _URL.findall(value))


def _has_password(url: str) -> bool:
    """`scheme://user:pass@host`; a URL too malformed to parse is judged by the pattern alone."""
    try:
        return bool(urlsplit(url).password)
    except ValueError:
        return False


def is_sensitive(name: str, value: EnvValue) -> bool:
    """A plain value is sensitive by where it came from, then by its name or its look; a secret
    reference never is (it names the secret, it does not hold it)."""
    if isinstance(value, SecretRef):
        return False
    return isinstance(value, Sensitive) or is_sensitive_name(name) or looks_like_credential(value)


def shown(name: str, value: EnvValue | None) -> str | None:
    """How a value may be displayed anywhere: the reference for secrets, MASK for sensitive."""
    if value is None:
        return None
    if isinstance(value, SecretRef):
        return str(value)
    return MASK if is_sensitive(name, value) else value


class Sensitive(str):
    """A value known to be sensitive by where it came from: shown, formatted or printed, it is MASK.

    The raw value is reachable only through `reveal()`: the provider's apply path, the local
    process start and a probe sending a header call it, nothing else.
    """

    __slots__ = ()

    def __new__(cls, value: str) -> Sensitive:
        register(value)
        return super().__new__(cls, value)

    def reveal(self) -> str:
        return str.__str__(self)

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Sensitive({MASK!r})"

    def __format__(self, spec: str) -> str:
        return format(MASK, spec)


def reveal(value: str) -> str:
    """The raw text of a value that may be Sensitive; a plain str is returned as it is."""
    return value.reveal() if isinstance(value, Sensitive) else value


# Values shorter than this are not registered: scrubbing `8080` or `true` from every line would
# mangle the output and say nothing. They are still masked by provenance where they are shown.
SCRUB_MIN_LENGTH = 6

_scrub_lock = threading.Lock()
_registered: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register(value: str) -> None:
    """Add a resolved sensitive value to the one process-wide scrubber (and its JSON form)."""
    global _pattern
    raw = str.__str__(value)
    forms = {raw, raw.encode("unicode_escape").decode("ascii"), _json_inner(raw)}
    forms |= {line for line in raw.splitlines() if line.strip()}
    new = {f for f in forms if len(f.strip()) >= SCRUB_MIN_LENGTH} - _registered
    if not new:
        return
    with _scrub_lock:
        _registered.update(new)
        longest_first = sorted(_registered, key=len, reverse=True)
        _pattern = re.compile("|".join(map(re.escape, longest_first)))


def _json_inner(raw: str) -> str:
    import json

    return json.dumps(raw)[1:-1]


def scrub(text: str) -> str:
    """Every registered sensitive value in `text` replaced by MASK: the last line of defence."""
    pattern = _pattern
    return text if pattern is None else pattern.sub(MASK, text)


def forget_all() -> None:
    """Empty the scrubber (tests: one process runs many CLI invocations)."""
    global _pattern
    with _scrub_lock:
        _registered.clear()
        _pattern = None


class ScrubbedStream:
    """A text stream whose writes pass through `scrub`; everything else is the wrapped stream's."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(scrub(text) if isinstance(text, str) else text)
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
