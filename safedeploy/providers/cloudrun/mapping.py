"""A Cloud Run Service <-> the neutral model: spec, settings, revisions, traffic. Pure.

The settings live in one table, each with how it is read from a Service and how it is written,
so `read` and `apply` cannot disagree about where a setting lives.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from safedeploy.errors import SafedeployError
from safedeploy.facts import Revision
from safedeploy.model import EnvValue, SecretRef, ServiceSpec
from safedeploy.redact import reveal

# Annotations safedeploy writes: on the service, the owned names (comma-separated, sorted);
# on each revision's template, the release that made it and what served when it was made.
MANAGED_ENV = "safedeploy.dev/managed-env"
RELEASE = "safedeploy.dev/release"
TRAFFIC_BEFORE = "safedeploy.dev/traffic-before"
CANDIDATE = "candidate"  # the tag that reaches a revision alone, before it gets traffic
NO_SERVICE = ""  # the fingerprint of a service that does not exist yet
MAX_REVISION_NAME = 63

# The values gcloud takes for --egress and --ingress, and the API's enum names for them.
EGRESS = {"all-traffic": "ALL_TRAFFIC", "private-ranges-only": "PRIVATE_RANGES_ONLY"}
INGRESS = {
    "all": "INGRESS_TRAFFIC_ALL",
    "internal": "INGRESS_TRAFFIC_INTERNAL_ONLY",
    "internal-and-cloud-load-balancing": "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
    "none": "INGRESS_TRAFFIC_NONE",
}


def owned_names(annotation: str) -> frozenset[str]:
    """`safedeploy.dev/managed-env`: names, comma-separated (env names cannot hold a comma)."""
    return frozenset(name.strip() for name in annotation.split(",") if name.strip())


def container_of(template: Any, name: str | None) -> Any:
    """The container the manifest addresses: `container:` by name, else the ingress one."""
    containers = list(template.containers)
    if name:
        for container in containers:
            if container.name == name:
                return container
        known = ", ".join(c.name or "(unnamed)" for c in containers)
        raise SafedeployError(
            f"the service has no container {name!r}; it has: {known}",
            hint="fix `container:` in the manifest",
        )
    return next((c for c in containers if c.ports), containers[0])


# -- settings -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Setting:
    """Where one manifest setting lives: read from what runs (None: unset), written to a Service."""

    read: Callable[[Any, Any, Any], Any]  # (service, template or revision, container) -> value
    write: Callable[[Any, Any, Any], None]  # (service, container, value)


def _name_of(names: Mapping[str, str], api_name: str) -> str | None:
    return next((name for name, api in names.items() if api == api_name), None)


def _cloudsql_volumes(template: Any) -> list[Any]:
    return [v for v in template.volumes if "cloud_sql_instance" in v]


def _cloudsql_instances(template: Any) -> list[str]:
    return [i for v in _cloudsql_volumes(template) for i in v.cloud_sql_instance.instances]


def _write_cloudsql(service: Any, container: Any, instances: list[str]) -> None:
    """One Cloud SQL volume holds the instances, mounted at /cloudsql; none for an empty list.
    Volumes that already hold exactly these instances stay as they are."""
    from google.cloud import run_v2

    template = service.template
    if _cloudsql_instances(template) == instances:
        return
    volumes = _cloudsql_volumes(template)
    keep = volumes[0] if volumes and instances else None
    dropped = {v.name for v in volumes if v is not keep}
    if instances and keep is None:
        keep = run_v2.Volume(name="cloudsql", cloud_sql_instance={"instances": instances})
        template.volumes = [*template.volumes, keep]
        container.volume_mounts = [
            *container.volume_mounts,
            run_v2.VolumeMount(name="cloudsql", mount_path="/cloudsql"),
        ]
    elif keep is not None:
        keep.cloud_sql_instance.instances = instances
    template.volumes = [v for v in template.volumes if v.name not in dropped]
    for each in template.containers:
        each.volume_mounts = [m for m in each.volume_mounts if m.name not in dropped]


def _write_port(service: Any, container: Any, port: int) -> None:
    from google.cloud import run_v2

    if container.ports:
        container.ports[0].container_port = port
    else:
        container.ports = [run_v2.ContainerPort(container_port=port)]


def _limit(key: str) -> _Setting:
    return _Setting(
        read=lambda s, t, c: c.resources.limits.get(key),
        write=lambda s, c, v: c.resources.limits.update({key: v}),
    )


SETTINGS: dict[str, _Setting] = {
    "min_instances": _Setting(
        read=lambda s, t, c: t.scaling.min_instance_count,
        write=lambda s, c, v: setattr(s.template.scaling, "min_instance_count", v),
    ),
    "labels": _Setting(
        read=lambda s, t, c: dict(s.labels), write=lambda s, c, v: setattr(s, "labels", v)
    ),
    "cpu": _limit("cpu"),
    "memory": _limit("memory"),
    "timeout": _Setting(
        read=lambda s, t, c: int(t.timeout.total_seconds()) if "timeout" in t else None,
        write=lambda s, c, v: setattr(s.template, "timeout", {"seconds": v}),
    ),
    "concurrency": _Setting(
        read=lambda s, t, c: t.max_instance_request_concurrency,
        write=lambda s, c, v: setattr(s.template, "max_instance_request_concurrency", v),
    ),
    "max_instances": _Setting(
        read=lambda s, t, c: t.scaling.max_instance_count,
        write=lambda s, c, v: setattr(s.template.scaling, "max_instance_count", v),
    ),
    "service_account": _Setting(
        read=lambda s, t, c: t.service_account,
        write=lambda s, c, v: setattr(s.template, "service_account", v),
    ),
    "vpc_connector": _Setting(
        read=lambda s, t, c: t.vpc_access.connector,
        write=lambda s, c, v: setattr(s.template.vpc_access, "connector", v),
    ),
    "egress": _Setting(
        read=lambda s, t, c: _name_of(EGRESS, t.vpc_access.egress.name),
        write=lambda s, c, v: setattr(s.template.vpc_access, "egress", EGRESS[v]),
    ),
    "cloudsql_instances": _Setting(
        read=lambda s, t, c: _cloudsql_instances(t), write=_write_cloudsql
    ),
    "ingress": _Setting(
        read=lambda s, t, c: _name_of(INGRESS, s.ingress.name),
        write=lambda s, c, v: setattr(s, "ingress", INGRESS[v]),
    ),
    "port": _Setting(
        read=lambda s, t, c: c.ports[0].container_port if c.ports else None, write=_write_port
    ),
}
_ALWAYS_READ = ("min_instances", "labels")  # shown even when zero or empty, as the API has them


def write_settings(service: Any, container: Any, settings: Mapping[str, Any]) -> None:
    """Set exactly what `settings` says; a setting absent from it stays as it is live."""
    for key, value in settings.items():
        if key in SETTINGS:
            SETTINGS[key].write(service, container, value)


# -- spec ---------------------------------------------------------------------------------------


def _env_value(var: Any) -> EnvValue:
    if "value_source" in var:
        ref = var.value_source.secret_key_ref
        return SecretRef(ref.secret, ref.version or "latest")
    return str(var.value)


def _env_var(name: str, value: EnvValue) -> Any:
    from google.cloud import run_v2

    if isinstance(value, SecretRef):
        ref = run_v2.SecretKeySelector(secret=value.secret, version=value.version)
        return run_v2.EnvVar(name=name, value_source=run_v2.EnvVarSource(secret_key_ref=ref))
    return run_v2.EnvVar(name=name, value=reveal(value))  # the apply path: the raw value


def running(service: Any, revisions: list[Any], split: Mapping[str, int]) -> Any:
    """What runs: the revision that serves the largest share (after a rollback, not the
    template); the template while nothing serves."""
    if split:
        name = max(split, key=lambda n: split[n])
        found = next((r for r in revisions if short(r.name) == name), None)
        if found is not None:
            return found
    return service.template


def spec_of(service: Any, template: Any, container_name: str | None) -> ServiceSpec:
    """What `template` (a Service's template or a Revision) runs, in the manifest's terms;
    the service-wide settings (ingress, labels) from `service`."""
    container = container_of(template, container_name)
    settings = {key: s.read(service, template, container) for key, s in SETTINGS.items()}
    return ServiceSpec(
        image=container.image or None,
        env={var.name: _env_value(var) for var in container.env},
        settings={k: v for k, v in settings.items() if v or k in _ALWAYS_READ},
    )


def write_env(container: Any, env: Mapping[str, EnvValue]) -> None:
    """Keep each live variable's entry where the value is unchanged; replace, drop, append."""
    present = {var.name for var in container.env}
    patched = [
        var if _env_value(var) == env[var.name] else _env_var(var.name, env[var.name])
        for var in container.env
        if var.name in env
    ]
    patched += [_env_var(name, value) for name, value in sorted(env.items()) if name not in present]
    container.env = patched


# -- revisions and traffic ----------------------------------------------------------------------


def short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def without_candidate(traffic: Any) -> list[Any]:
    """Traffic with the candidate tag gone: a tag-only target goes, a serving one stays."""
    kept = []
    for target in traffic:
        if target.tag == CANDIDATE:
            if not target.percent:
                continue
            target.tag = ""
        kept.append(target)
    return kept


def with_candidate(service: Any, revision: str) -> list[Any]:
    """The live traffic, pinned to revisions, plus the new revision at 0% with the candidate tag."""
    from google.cloud import run_v2

    kinds = run_v2.TrafficTargetAllocationType
    latest = short(service.latest_ready_revision)
    traffic = without_candidate(service.traffic)
    for target in traffic:
        if (
            target.type_ == kinds.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
            and target.percent
            and latest
        ):
            target.type_ = kinds.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
            target.revision = latest
    traffic.append(
        run_v2.TrafficTarget(
            type_=kinds.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION, revision=revision, tag=CANDIDATE
        )
    )
    return traffic


def routed(service: Any, split: Mapping[str, int]) -> list[Any]:
    """`split` pinned to revisions; tags stay, the candidate's only while it is in the split."""
    from google.cloud import run_v2

    pinned = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
    traffic = [
        run_v2.TrafficTarget(type_=pinned, revision=name, percent=percent)
        for name, percent in split.items()
        if percent
    ]
    traffic += [
        run_v2.TrafficTarget(type_=t.type_, revision=t.revision, tag=t.tag)
        for t in service.traffic
        if t.tag and (t.tag != CANDIDATE or split.get(t.revision))
    ]
    return traffic


def _target_revision(service: Any, target: Any) -> str:
    """The revision a traffic status serves: LATEST means the latest ready one."""
    return str(target.revision) or short(service.latest_ready_revision)


def serving(service: Any) -> dict[str, int]:
    """Revision -> percent, from what the service actually serves (trafficStatuses)."""
    split: dict[str, int] = {}
    for status in service.traffic_statuses:
        if status.percent:
            name = _target_revision(service, status)
            split[name] = split.get(name, 0) + status.percent
    return split


def tag_urls(service: Any) -> dict[str, str]:
    """Revision -> a URL that reaches it alone: its candidate tag's, else any tag's."""
    urls: dict[str, str] = {}
    for status in sorted(service.traffic_statuses, key=lambda s: s.tag != CANDIDATE):
        if status.tag and status.uri:
            urls.setdefault(_target_revision(service, status), status.uri)
    return urls


def ready_condition(revision: Any) -> Any:
    return next((c for c in revision.conditions if c.type_ == "Ready"), None)


def revision_of(found: Any, split: Mapping[str, int], tags: Mapping[str, str]) -> Revision:
    name = short(found.name)
    ready = ready_condition(found)
    ok = ready is not None and ready.state.name == "CONDITION_SUCCEEDED"
    container = next(iter(found.containers), None)
    return Revision(
        name=name,
        percent=split.get(name, 0),
        ready=ok,
        url=tags.get(name),
        image=container.image if container is not None else None,
        created=found.create_time.isoformat(timespec="seconds") if "create_time" in found else None,
        message=None if ok or ready is None else str(ready.message) or None,
    )
