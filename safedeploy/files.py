"""The one way safedeploy writes and reads its own files: private, whole, and named in errors.

State, history, plans and logs say what runs where and who deployed it, so they are 0600 in
0700 folders; a record is replaced whole or not at all; a file that cannot be read is an error
that names it and says what to do, never an internal error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from safedeploy.errors import SafedeployError

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def private_folder(path: Path) -> Path:
    """Create `path` and its missing parents 0700 (`mkdir(parents=True)` would make the parents
    with the default mode); an existing folder is left as it is."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=FOLDER_MODE, exist_ok=True)
    return path


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text`, 0600, atomically: a crash never leaves half a file."""
    private_folder(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, FILE_MODE)  # an older tmp file keeps its mode through O_TRUNC
    tmp.replace(path)


def append_private(path: Path) -> IO[bytes]:
    """A log opened for appending, 0600."""
    private_folder(path.parent)
    return os.fdopen(os.open(path, os.O_CREAT | os.O_APPEND | os.O_WRONLY, FILE_MODE), "ab")


def read_json(path: Path, what: str) -> Any:
    """The JSON in `path`; a file that is unreadable or not JSON names itself and the way out."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise unreadable(path, what, exc) from None


def unreadable(path: Path, what: str, why: object) -> SafedeployError:
    """The error for a damaged state or history file; nothing was changed because of it."""
    return SafedeployError(
        f"cannot read {what}: {why}; nothing was changed",
        where=str(path),
        hint=f"move it aside (mv {path} {path}.broken) and run the command again; "
        "`safedeploy status` shows what the platform serves",
    )
