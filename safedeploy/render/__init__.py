"""Renderers format plans; they decide nothing. Each leads with the verdict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from safedeploy.plan import Plan

Format = Literal["text", "markdown", "json"]


def render(plans: Sequence[Plan], fmt: Format, *, color: bool = False) -> str:
    if fmt == "json":
        from safedeploy.render.json import render_json

        return render_json(plans)
    if fmt == "markdown":
        from safedeploy.render.markdown import render_markdown

        return render_markdown(plans)
    from safedeploy.render.text import render_text

    return render_text(plans, color=color)
