"""Load a manifest: YAML with line numbers -> `environments` overlay -> ${VARS} -> pydantic.

Every error names the file, the line and the key, and nothing is loaded half-way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from safedeploy.model import Platform, SecretRef, ServiceSpec


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Expect(Strict):
    status: int = 200
    json_subset: dict[str, Any] | None = Field(default=None, alias="json")
    contains: str | None = None  # a substring the body must contain
    regex: str | None = None  # a regular expression the body must match (re.search)
    max_latency: float | None = None  # seconds; "2s" and "500ms" are accepted in YAML


class ProbeSpec(Strict):
    """One HTTP smoke check against the new revision, retried until it holds or times out."""

    name: str
    path: str = "/"
    method: str = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    expect: Expect = Field(default_factory=Expect)
    retries: int = 10  # attempts after the first
    interval: float = 1.0  # seconds between attempts
    successes: int = 1  # consecutive passing attempts needed
    timeout: float = 30.0  # seconds for the whole probe, all attempts together


class Settings(Strict):
    """Platform settings safedeploy can declare; an unset one is left as it is live."""

    cpu: str | None = None
    memory: str | None = None
    timeout: int | None = None  # seconds
    concurrency: int | None = None
    min_instances: int | None = None
    max_instances: int | None = None
    service_account: str | None = None
    vpc_connector: str | None = None
    egress: str | None = None
    cloudsql_instances: list[str] | None = None
    ingress: str | None = None
    labels: dict[str, str] | None = None
    port: int | None = None


class Rollout(Strict):
    strategy: Literal["canary", "all-at-once"] = "all-at-once"
    steps: list[int] = Field(default_factory=lambda: [100])


class Manifest(Strict):
    """A validated manifest with every ${VAR} filled and the --env overlay applied."""

    service: str
    platform: Platform
    project: str | None = None
    region: str | None = None
    image: str | None = None
    command: list[str] | None = None  # local platform: argv instead of an image
    env: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, SecretRef] = Field(default_factory=dict)
    required: list[str] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list)
    unmanaged: Literal["keep", "remove", "fail"] = "keep"
    settings: Settings = Field(default_factory=Settings)
    probes: list[ProbeSpec] = Field(default_factory=list)
    rollout: Rollout = Field(default_factory=Rollout)
    rollback: Literal["auto", "off"] = "auto"
    probe_url: str | None = None
    probe_auth: Literal["id-token"] | None = None
    container: str | None = None
    history: str | None = None
    depends_on: list[str] = Field(default_factory=list)

    # Where the manifest came from, for errors and findings; not part of the YAML.
    path: Path = Field(default=Path("-"), exclude=True)
    lines: dict[str, int] = Field(default_factory=dict, exclude=True, repr=False)

    def line_of(self, key: str) -> int | None:
        """The line of a dotted key (`env.FOO`, `secrets.BAR`, `image`), or of its nearest parent."""
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key.rpartition(".")[0]
        return None

    def desired_spec(self) -> ServiceSpec:
        """The service as the manifest declares it: plain env and secret references together."""
        env: dict[str, str | SecretRef] = dict(self.env)
        env.update(self.secrets)
        return ServiceSpec(
            image=self.image,
            command=tuple(self.command or ()),
            env=env,
            settings=self.settings.model_dump(exclude_none=True),
        )

    @property
    def declared(self) -> frozenset[str]:
        """The names this manifest owns: written as the last-applied names on deploy."""
        return frozenset(self.env) | frozenset(self.secrets)
