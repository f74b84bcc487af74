"""The one place that decides what is sensitive and how it may be shown.

Masking happens when the plan is built, so no renderer, plan file or history record can leak.
"""

from __future__ import annotations

import re
from functools import cache
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
    "PRIVATE_KEY",
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
    """A plain value is sensitive by its name or its look; a secret reference never is."""
    if isinstance(value, SecretRef):
        return False
    return is_sensitive_name(name) or looks_like_credential(value)


def shown(name: str, value: EnvValue | None) -> str | None:
    """How a value may be displayed anywhere: the reference for secrets, MASK for sensitive."""
    if value is None:
        return None
    if isinstance(value, SecretRef):
        return str(value)
    return MASK if is_sensitive(name, value) else value
