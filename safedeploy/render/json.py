"""`--format json`: the stable schema for scripts, one key a line below.

    schema_version          int: plan.SCHEMA_VERSION; bumped only when a key changes meaning
    summary.services        int: how many services the document covers
    summary.changed         int: services whose plan is `create` or `update`
    summary.unchanged       int: services whose plan is `none`
    summary.errors          int: error findings over all services; any error means no deploy
    summary.warnings        int: warning findings over all services
    plans[]                 one object per service, in the order given
      .service              str: the service name
      .platform             str: cloudrun | apprunner | ecs-express | local
      .manifest             str: the manifest file the plan was built from
      .action               str: create | update | none
      .ok                   bool: false when the plan has an error finding and must not apply
      .variables[]          one per env name in desired, live or remove:, sorted by name
        .name               str: the variable name
        .action             str: a merge.Action value (added, changed, kept-unmanaged, ...)
        .before             str | null: the live value as it may be shown (masked), null if absent
                            and for kept drift (shown by name only)
        .after              str | null: the merged value as it may be shown: a ${VAR} fill as
                            its template, null if removed and for kept drift
        .sensitive          bool: the value is masked as "(sensitive)" or shown as its template
      .changes[]            image, command and settings.X changes, sorted by field
        .field              str: `image`, `command` or `settings.NAME`
        .before / .after    any: the value before and after, null where absent
      .findings[]           lint findings, errors and warnings
        .code               str: a stable rule code such as SD104
        .severity           str: error | warning
        .key                str | null: the dotted manifest key, e.g. env.DATABASE_URL
        .message / .hint    str: what is wrong and how to fix it
        .file / .line       str | null, int | null: where in the manifest
      .live_fingerprint     str: the platform's version the plan saw (Cloud Run etag, App Runner
                            operation, local generation); apply refuses if it moved
      .serving              {revision: percent}: the split serving at plan time; a failed
                            deploy routes back to it
      .owned                [str]: the names this release records as owned; `deploy --plan`
                            refuses when planning again gives other .action, .variables,
                            .changes or .owned (no value and no digest of one is kept)

The counts all three formats quote come from render/wording.py, so they agree.

`deploy --format json` (render_runs_json), one key a line below:

    schema_version          int: 1
    exit_code               int: the process exit code, the worst of the services'
    results[]               one object per service, in the order given
      .service              str: the service name
      .outcome              str: succeeded | unchanged | failed | rolled-back | rollback-failed |
                            left-failed | skipped (a service it depends on failed)
      .exit_code            int: 0 | 1 | 3 | 4, as for the process
      .seconds              float: how long its deploy took (0 when skipped)
      .release_id           str | null: the release record written for it
      .revision             str | null: the revision it created
      .revision_url         str | null: where that revision alone answered (a tag URL)
      .url                  str | null: the service URL
      .traffic_before/after {revision: percent}: the split before and after
      .probes[]             each probe: name, url, ok, attempts, status, latency_ms, elapsed_ms,
                            error, method
      .message              str | null: what failed, and what serves now
      .diagnosis            object | null: why it failed (exit 3 and 4), every text cleaned:
        .source             str: where it was read (Cloud Run + Cloud Logging, local process)
        .revision           str: the failed revision
        .status             str | null: the operation's error or the process's exit
        .conditions[]       the platform's conditions: type, state, reason, message
        .lines[]            the log lines that matter, oldest first: time, severity, text
        .hints[]            key (the manifest key to change) and text (what to change)
        .notes[]            str: what could not be read, and the permission or API it needs
        .probe              str | null: the start of the failed probe's response body
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING

from safedeploy.plan import Plan, plans_document
from safedeploy.render.wording import summary

if TYPE_CHECKING:
    from safedeploy.fleet import ServiceRun


def render_json(plans: Sequence[Plan]) -> str:
    document = {**plans_document(plans), "summary": summary(plans)}
    return json.dumps(document, indent=2, sort_keys=True)


def render_runs_json(runs: Sequence[ServiceRun]) -> str:
    """`deploy --format json`, as the module's docstring lists it."""
    from safedeploy.fleet import worst

    results = [{**asdict(r.result), "seconds": round(r.seconds, 3)} for r in runs]
    document = {"schema_version": 1, "exit_code": worst(runs), "results": results}
    return json.dumps(document, indent=2, sort_keys=True)
