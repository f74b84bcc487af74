"""The one place that decides what is sensitive and how it may be shown.

Masking happens when the plan is built, so no renderer, plan file or history record can leak.
"""

from __future__ import annotations

from safedeploy.model import EnvValue

MASK = "(sensitive)"


def is_sensitive_name(name: str) -> bool:
    """*SECRET*, *PASSWORD*, *TOKEN*, *_KEY (case-insensitive), and close kin."""
    raise NotImplementedError


def looks_like_credential(value: str) -> bool:
    """sk_live_/sk_test_ keys, AKIA access keys, PEM blocks, URLs with an inline password..."""
    raise NotImplementedError


def is_sensitive(name: str, value: EnvValue) -> bool:
    """A plain value is sensitive by its name or its look; a secret reference never is."""
    raise NotImplementedError


def shown(name: str, value: EnvValue | None) -> str | None:
    """How a value may be displayed anywhere: the reference for secrets, MASK for sensitive."""
    raise NotImplementedError
