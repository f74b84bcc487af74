"""Renderers format plans and deploy results; they decide nothing. Each leads with the verdict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from safedeploy.fleet import ServiceRun
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


def render_runs(runs: Sequence[ServiceRun], fmt: Format) -> str:
    """What a deploy did, per service: outcome, revision, duration, exit code."""
    if fmt == "json":
        from safedeploy.render.json import render_runs_json

        return render_runs_json(runs)
    if fmt == "markdown":
        from safedeploy.render.markdown import render_runs_markdown

        return render_runs_markdown(runs)
    from safedeploy.render.text import render_runs_text

    return render_runs_text(runs)
