"""The `local` platform: each revision is a process on a loopback port, for trying the pipeline.

A state folder plays the platform's part: `service.json` holds the revisions and which one is
active (what Cloud Run's service resource holds), `logs/` the processes' output. Secrets come
from a dotenv file named by SAFEDEPLOY_LOCAL_SECRETS, or files in `<state>/secrets/`; they are
read only to start a process and never written anywhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from safedeploy.cancel import NEVER, CancelToken
from safedeploy.errors import SafedeployError, VersionMoved
from safedeploy.facts import Diagnosis, Fact, LiveService, LogLine, Problem, Revision, Unread
from safedeploy.files import append_private, read_json, unreadable, write_private
from safedeploy.model import EnvValue, SecretRef, ServiceSpec
from safedeploy.providers.base import Candidate, Capabilities, Pending
from safedeploy.redact import Sensitive, reveal

READY_TIMEOUT = 20.0
LOG_TAIL = 64 * 1024  # bytes at the end of a revision's log read for a diagnosis
STOP_TIMEOUT = 5.0


class LocalSecrets:
    """The local secret source: a dotenv file, or one file per secret in a folder."""

    def __init__(self, folder: Path, environ: Mapping[str, str]) -> None:
        self.dotenv = environ.get("SAFEDEPLOY_LOCAL_SECRETS")
        self.folder = folder

    @property
    def where(self) -> str:
        return self.dotenv or str(self.folder)

    def get(self, name: str) -> Sensitive | None:
        """The secret's value, registered with the scrubber as it is read."""
        if self.dotenv:
            from dotenv import dotenv_values

            found = dotenv_values(self.dotenv).get(name)
            return None if found is None else Sensitive(found)
        path = self.folder / name
        if not path.is_file():
            return None
        value = path.read_text()
        return Sensitive(value[:-1] if value.endswith("\n") else value)


class LocalProvider:
    capabilities = Capabilities(traffic_split=False, candidate_url=True, owned_on_service=False)

    def __init__(
        self,
        service: str,
        state_dir: Path,
        workdir: Path,
        environ: Mapping[str, str],
    ) -> None:
        self.service = service
        self.folder = state_dir / service
        self.workdir = workdir
        self.secrets = LocalSecrets(state_dir / "secrets", environ)
        self.path_env = environ.get("PATH", os.defpath)

    # -- state -------------------------------------------------------------------------------

    def _load(self) -> dict[str, Any]:
        path = self.folder / "service.json"
        if not path.is_file():
            return {"generation": 0, "active": None, "revisions": {}}
        state: dict[str, Any] = read_json(path, "the local platform's state")
        if not isinstance(state, dict) or not {"generation", "revisions"} <= state.keys():
            raise unreadable(path, "the local platform's state", "not a state file")
        return state

    def _save(self, state: dict[str, Any]) -> None:
        state["generation"] += 1
        write_private(
            self.folder / "service.json", json.dumps(state, indent=2, sort_keys=True) + "\n"
        )

    @staticmethod
    def _fingerprint(state: dict[str, Any]) -> str:
        """The state's version counter: every save moves it, and it says nothing of a value."""
        return f"generation-{state['generation']}"

    def read(self) -> LiveService:
        state = self._load()
        active = state["active"]
        revisions = tuple(
            _revision(name, record, 100 if name == active else 0, _running(record.get("pid")))
            for name, record in state["revisions"].items()
        )
        active_record = state["revisions"].get(active) if active else None
        return LiveService(
            name=self.service,
            spec=_spec(active_record) if active_record else None,
            fingerprint=self._fingerprint(state),
            revisions=revisions,
            url=_url(active_record) if active_record else None,
        )

    # -- the provider surface ----------------------------------------------------------------

    def preflight(self, target: ServiceSpec) -> list[Fact]:
        return [
            Fact(
                Problem.SECRET_MISSING,
                f"secrets.{name}",
                f"secret {value.secret!r} is not in the local secret source",
                f"add it to {self.secrets.where}",
            )
            for name, value in sorted(target.env.items())
            if isinstance(value, SecretRef) and self.secrets.get(value.secret) is None
        ]

    def apply(self, candidate: Candidate) -> Pending:
        state = self._load()
        if self._fingerprint(state) != candidate.version:
            raise VersionMoved(where=str(self.folder / "service.json"))
        name, target = candidate.revision, candidate.target
        record = {
            "command": list(target.command),
            "env": {k: _stored(v) for k, v in target.env.items()},
            "settings": dict(target.settings),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        state["revisions"][name] = record
        process = self._start(name, record)
        self._save(state)
        return Pending(candidate, _revision(name, record, 0, False), process)

    def wait_ready(self, pending: Pending, cancel: CancelToken) -> Revision:
        return self._listening(pending.revision.name, cancel, pending.operation)

    def _listening(
        self, name: str, cancel: CancelToken, process: subprocess.Popen[bytes] | None = None
    ) -> Revision:
        """The revision once its process listens on its port; why not, when it exits first.
        With the process that apply started, its own exit code."""
        record = self._load()["revisions"][name]
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            code = process.poll() if process is not None else _exit_code(record["pid"])
            if code is not None:
                state = self._load()
                state["revisions"][name]["exited"] = code  # evidence for `diagnose`
                self._save(state)
                raise SafedeployError(
                    f"revision {name} exited with code {code} before it was ready",
                    where=str(self.folder / "logs" / f"{name}.log"),
                    hint="read the revision's log",
                )
            try:
                with socket.create_connection(("127.0.0.1", record["port"]), timeout=0.5):
                    return _revision(name, record, 0, True)
            except OSError:
                cancel.sleep(0.05)
        raise SafedeployError(
            f"revision {name} did not listen on port {record['port']} within {READY_TIMEOUT:.0f}s",
            where=str(self.folder / "logs" / f"{name}.log"),
            hint="the command must listen on 127.0.0.1:$PORT",
        )

    def route(self, split: Mapping[str, int], served: ServiceSpec | None = None) -> None:
        serving = [name for name, percent in split.items() if percent]
        if len(serving) != 1 or split[serving[0]] != 100:
            raise SafedeployError(
                f"the local platform serves one revision at a time, not {dict(split)}"
            )
        state = self._load()
        name = serving[0]
        record = state["revisions"].get(name)
        if record is None:
            raise SafedeployError(f"no revision {name} of {self.service}", hint="see `status`")
        if not _running(record.get("pid")):
            process = self._start(name, record)
            self._save(state)
            self._listening(name, NEVER, process)
        state["active"] = name
        self._save(state)

    def retire(self, keep: Revision, cancel: CancelToken = NEVER) -> None:
        state = self._load()
        for name, record in state["revisions"].items():
            if name != keep.name and record.get("pid"):
                self._stop(record)
        self._save(state)

    def preview(self, revision: Revision) -> Revision:
        """Start the revision's process if it is stopped; it gets traffic only from `route`."""
        state = self._load()
        record = state["revisions"].get(revision.name)
        if record is None:
            raise SafedeployError(f"no revision {revision.name} of {self.service}")
        if not _running(record.get("pid")):
            process = self._start(revision.name, record)
            self._save(state)
            return self._listening(revision.name, NEVER, process)
        return self._listening(revision.name, NEVER)

    def diagnose(self, revision: str, since: datetime, cancel: CancelToken) -> Diagnosis:
        """The process's exit code when it ended by itself, and the tail of its log."""
        cancel.check()
        code = self._load()["revisions"].get(revision, {}).get("exited")
        status = None if code is None else f"the process exited with code {code}"
        path = self.folder / "logs" / f"{revision}.log"
        try:
            with path.open("rb") as log:
                start = max(0, path.stat().st_size - LOG_TAIL)
                log.seek(start)
                text = log.read().decode("utf-8", errors="replace")
            if start:  # the first line read is the end of a line cut in two
                text = text.partition("\n")[2]
        except OSError as exc:
            unread = Unread(f"the log of {revision}", f"read access to {path}", str(exc.strerror))
            return Diagnosis("local process", revision, status, unread=(unread,))
        lines = tuple(LogLine(None, None, line) for line in text.splitlines() if line.strip())
        return Diagnosis("local process", revision, status, lines=lines)

    def discard(self, candidate: Revision) -> None:
        state = self._load()
        record = state["revisions"].get(candidate.name)
        if record and record.get("pid") and state["active"] != candidate.name:
            self._stop(record)
            self._save(state)

    def stop_all(self) -> None:
        """Stop every process of this service (the demo and the tests clean up with it)."""
        state = self._load()
        for record in state["revisions"].values():
            if record.get("pid"):
                self._stop(record)
        if state["revisions"]:
            self._save(state)

    # -- processes ---------------------------------------------------------------------------

    def _start(self, name: str, record: dict[str, Any]) -> subprocess.Popen[bytes]:
        """Start the revision's process on a free loopback port; record port and pid."""
        env = {"PATH": self.path_env, "K_SERVICE": self.service, "K_REVISION": name}
        for key, value in record["env"].items():
            env[key] = reveal(self._resolve(key, value))
        port = _free_port()
        env["PORT"] = str(port)
        with append_private(self.folder / "logs" / f"{name}.log") as log:
            try:
                process = subprocess.Popen(
                    record["command"],
                    cwd=self.workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise SafedeployError(
                    f"cannot start revision {name}: {exc.strerror}",
                    where=f"command {record['command'][:1]}",
                    hint="check `command:` in the manifest; it runs from the manifest's folder",
                ) from exc
        record["port"] = port
        record["pid"] = process.pid
        return process

    def _resolve(self, key: str, value: Any) -> str:
        if isinstance(value, dict):
            secret = self.secrets.get(value["secret"])
            if secret is None:
                raise SafedeployError(
                    f"secret {value['secret']!r} for {key} is not in the local secret source",
                    hint=f"add it to {self.secrets.where}",
                )
            return secret
        return reveal(value) if isinstance(value, str) else str(value)

    def _stop(self, record: dict[str, Any]) -> None:
        pid = record.pop("pid")
        record.pop("port", None)
        if not _running(pid):
            return
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + STOP_TIMEOUT
        while _exit_code(pid) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if _exit_code(pid) is None:
            os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _exit_code(pid: int) -> int | None:
    """None while the process runs; its exit code once it ended (reaped here when it is our
    child, -1 when another process started it)."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None if _running(pid) else -1
    return None if done == 0 else os.waitstatus_to_exitcode(status)


def _running(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not running; its parent just has not reaped it yet
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _stored(value: EnvValue) -> Any:
    """Secrets are stored as references; plain values are kept, as a platform keeps them.

    service.json is the local platform's own store, as Cloud Run's is the service: a revision is
    started again from it, so its plain values are the one place a value is written.
    """
    if isinstance(value, SecretRef):
        return {"secret": value.secret, "version": value.version}
    return reveal(value)


def _spec(record: dict[str, Any]) -> ServiceSpec:
    env: dict[str, EnvValue] = {
        k: SecretRef(v["secret"], v["version"]) if isinstance(v, dict) else v
        for k, v in record["env"].items()
    }
    return ServiceSpec(command=tuple(record["command"]), env=env, settings=record["settings"])


def _url(record: dict[str, Any]) -> str | None:
    return f"http://127.0.0.1:{record['port']}" if record.get("port") else None


def _revision(name: str, record: dict[str, Any], percent: int, ready: bool) -> Revision:
    return Revision(
        name=name,
        percent=percent,
        ready=ready,
        url=_url(record),
        created=record.get("created"),
        message=None if ready else "not running",
    )
