"""The provider contract: the same behaviours on every platform, through the Provider protocol.

A platform is done when it passes this file. Each test runs once per platform (the test id names
it); a behaviour a platform's capabilities rule out is skipped with the capability as reason.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from safedeploy.cancel import NEVER, Cancelled, CancelToken
from safedeploy.errors import SafedeployError, VersionMoved
from safedeploy.facts import Problem, Revision
from safedeploy.model import SecretRef
from safedeploy.providers.base import Diagnoses, Previews, Provider

from .conftest import Rig, candidate


def deploy(rig: Rig, version: int, **manifest: object) -> Revision:
    """One whole release through the protocol: plan, apply, wait, route, retire."""
    m = rig.manifest(version, **manifest)  # type: ignore[arg-type]
    provider = rig.provider(m)
    plan = rig.plan(m, provider)
    assert plan.ok, plan.findings
    ready = provider.wait_ready(provider.apply(candidate(plan)), NEVER)
    provider.route({ready.name: 100})
    provider.retire(ready)
    return ready


def test_read_reports_a_service_that_does_not_exist(rig: Rig) -> None:
    live = rig.provider(rig.manifest()).read()
    assert live.spec is None and not live.exists
    assert live.traffic == {}


def test_a_first_release_reads_back_as_it_was_made(rig: Rig) -> None:
    first = deploy(rig, 1, secret=True)
    live = rig.provider(rig.manifest()).read()
    assert live.traffic == {first.name: 100}
    assert live.spec is not None
    assert live.spec.env["VERSION"] == "v1"
    assert isinstance(live.spec.env["API_TOKEN"], SecretRef)
    assert live.url


def test_apply_refuses_a_version_that_moved_and_changes_nothing(rig: Rig) -> None:
    first = deploy(rig, 1)
    m = rig.manifest(2)
    provider = rig.provider(m)
    plan = rig.plan(m, provider)
    rig.change_outside()
    before = provider.read()
    with pytest.raises(VersionMoved):
        provider.apply(candidate(plan))
    after = provider.read()
    assert after.traffic == before.traffic == {first.name: 100}
    assert {r.name for r in after.revisions} == {r.name for r in before.revisions}


def test_the_candidate_takes_no_traffic_until_routed(rig: Rig) -> None:
    provider = rig.provider(rig.manifest())
    if not provider.capabilities.candidate_url:
        pytest.skip("no candidate_url: a new configuration serves as soon as it is ready")
    first = deploy(rig, 1)
    m = rig.manifest(2)
    provider = rig.provider(m)
    ready = provider.wait_ready(provider.apply(candidate(rig.plan(m, provider))), NEVER)
    assert ready.url
    assert provider.read().traffic == {first.name: 100}
    provider.discard(ready)
    assert provider.read().traffic == {first.name: 100}


def test_traffic_moves_to_the_split_asked_for(rig: Rig) -> None:
    first = deploy(rig, 1)
    second = deploy(rig, 2)
    provider = rig.provider(rig.manifest(2))
    assert provider.read().traffic == {second.name: 100}
    if provider.capabilities.traffic_split:
        provider.route({first.name: 50, second.name: 50})
        assert provider.read().traffic == {first.name: 50, second.name: 50}


def test_restore_serves_the_earlier_revision_whole(rig: Rig) -> None:
    first = deploy(rig, 1)
    deploy(rig, 2)
    provider = rig.provider(rig.manifest(1))
    provider.route({first.name: 100})
    live = provider.read()
    assert live.traffic == {first.name: 100}
    assert live.spec is not None and live.spec.env["VERSION"] == "v1"


def test_preflight_reports_a_missing_secret_as_a_fact(rig: Rig) -> None:
    m = rig.manifest(1, secret=False)
    facts = rig.provider(m).preflight(rig.plan(m, rig.provider(m)).target)
    missing = [f for f in facts if f.problem is Problem.SECRET_MISSING]
    assert [f.key for f in missing] == ["secrets.API_TOKEN"]
    assert missing[0].detail


def test_preflight_finds_nothing_missing_when_the_secret_exists(rig: Rig) -> None:
    m = rig.manifest(1, secret=True)
    facts = rig.provider(m).preflight(rig.plan(m, rig.provider(m)).target)
    assert not [f for f in facts if f.problem is Problem.SECRET_MISSING]


def test_a_refused_write_is_an_error_that_names_where_and_changes_nothing(rig: Rig) -> None:
    first = deploy(rig, 1)
    m = rig.manifest(2)
    provider = rig.provider(m)
    plan = rig.plan(m, provider)
    rig.refuse_next_write()
    with pytest.raises(SafedeployError) as refused:
        provider.apply(candidate(plan))
    assert refused.value.where
    rig.mend()
    assert provider.read().traffic == {first.name: 100}


def test_a_cancelled_wait_raises_cancelled(rig: Rig) -> None:
    deploy(rig, 1)
    m = rig.manifest(2, slow=True)
    provider = rig.provider(m)
    pending = provider.apply(candidate(rig.plan(m, provider)))
    token = CancelToken()
    token.cancel("cancelled by SIGTERM")
    with pytest.raises(Cancelled):
        provider.wait_ready(pending, token)


def test_a_fresh_provider_finishes_what_another_started(rig: Rig) -> None:
    """Stateless: whatever wait_ready needs travels in the value apply returned."""
    deploy(rig, 1)
    m = rig.manifest(2)
    one = rig.provider(m)
    pending = one.apply(candidate(rig.plan(m, one)))
    ready = rig.provider(m).wait_ready(pending, NEVER)
    assert ready.name == pending.candidate.revision
    assert ready.ready


def test_owned_names_live_where_the_capabilities_say(rig: Rig) -> None:
    deploy(rig, 1)
    provider: Provider = rig.provider(rig.manifest())
    live = provider.read()
    if provider.capabilities.owned_on_service:
        assert live.owned == frozenset({"VERSION"})
    else:
        assert live.owned == frozenset()


def test_a_preview_answers_alone_without_traffic(rig: Rig) -> None:
    first = deploy(rig, 1)
    second = deploy(rig, 2)
    provider = rig.provider(rig.manifest(2))
    if not isinstance(provider, Previews):
        pytest.skip("no Previews: the platform runs one configuration at a time")
    alone = provider.preview(replace(first, url=None))
    assert alone.url
    assert provider.read().traffic == {second.name: 100}
    provider.discard(alone)


def test_a_diagnosis_names_the_revision_reports_what_it_could_not_read_and_stops_on_a_signal(
    rig: Rig,
) -> None:
    provider = rig.provider(rig.manifest())
    if not isinstance(provider, Diagnoses):
        pytest.skip("no Diagnoses: the platform's records of a failure are not read")
    first = deploy(rig, 1)
    since = datetime.now(UTC) - timedelta(minutes=1)
    found = provider.diagnose(first.name, since, NEVER)
    assert found.revision == first.name and found.source
    assert all(u.what and u.needs for u in found.unread)  # what it needs, never an exception
    stopped = CancelToken()
    stopped.cancel("SIGTERM")
    with pytest.raises(Cancelled):
        provider.diagnose(first.name, since, stopped)
