"""Text safedeploy did not write (an app's log lines, a probe's response body), made safe to show.

An app may print its own DATABASE_URL on a crash although safedeploy never read that secret, so
besides every value the run registered as sensitive, anything shaped like a credential is masked.
Terminal escapes and control characters are neutralised and a line's length is bounded.
"""

from __future__ import annotations

import re

from safedeploy.redact import MASK, is_sensitive_name, scrub

LINE_LIMIT = 300  # characters of one untrusted line that are shown

# Each alternative masks what follows `keep` (or the whole match when there is no `keep`).
_SHAPES = re.compile(
    r"""
      (?P<url>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]+@        # URL userinfo: scheme://user:pass@
    | (?P<bearer>\b(?:Bearer|Basic|Token)\s+)[^\s"',;]+    # an Authorization header's credential
    | (?P<name>\b[A-Za-z_][A-Za-z0-9_.-]*)                 # NAME=value, "name": "value"
      (?P<sep>\s*=\s*["']?|["']\s*:\s*["'])(?P<value>[^\s"',;&}]+)
    | -----BEGIN\ [A-Z0-9 ]*PRIVATE\ KEY-----.*            # PEM private key, to the line's end
    | (?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{8,}           # Stripe keys
    | \bAKIA[0-9A-Z]{16}\b                                 # AWS access key id
    | \bgh[pousr]_[0-9A-Za-z]{30,}                         # GitHub tokens
    | \bgithub_pat_[0-9A-Za-z_]{22,}
    | \bxox[bpas]-[0-9A-Za-z-]{10,}                        # Slack tokens
    | \beyJ[0-9A-Za-z_-]+\.eyJ[0-9A-Za-z_-]+\.[0-9A-Za-z_-]*  # JWTs
    | \bAIza[0-9A-Za-z_-]{35}                              # Google API keys
    | \bya29\.[0-9A-Za-z_-]{20,}                           # Google OAuth access tokens
    | \b(?:password|passwd|pwd)=[^\s&;]+                   # libpq DSNs, query strings
    """,
    re.VERBOSE,
)
# CSI (colours, cursor moves) and OSC (titles, hyperlinks) sequences, then any other escape.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b.?")
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F) if c != 0x09}
_NAMED = {0x0A: "\\n", 0x0D: "\\r"}


def clean(text: str, limit: int = LINE_LIMIT) -> str:
    """One line fit to print anywhere: secrets and credential shapes masked, escapes dropped,
    control characters visible, at most `limit` characters."""
    text = mask_credentials(scrub(text))
    text = _ESCAPES.sub("", text).replace("\t", " ")
    text = text.translate({**_CONTROLS, **_NAMED})
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mask_credentials(text: str) -> str:
    """Whatever looks like a credential replaced by MASK, whoever's it is."""
    return _SHAPES.sub(_masked, text)


def _masked(match: re.Match[str]) -> str:
    if match["url"]:
        return f"{match['url']}{MASK}@"
    if match["bearer"]:
        return f"{match['bearer']}{MASK}"
    if match["name"]:
        value = MASK if is_sensitive_name(match["name"]) else mask_credentials(match["value"])
        return f"{match['name']}{match['sep']}{value}"
    return MASK
