"""Read one YAML file into plain data and the line of every key, within fixed bounds.

YAML 1.2's plain scalars (libyaml's parser), a repeated key refused with both lines, and
aliases expanded under a bound on values and depth, so a hostile file costs nothing to refuse.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from yaml import (
    CSafeLoader,
    MappingNode,
    MarkedYAMLError,
    Node,
    ScalarNode,
    SequenceNode,
    YAMLError,
)

from safedeploy.errors import SafedeployError, location

# Bounds on what a manifest may be, so a hostile file in a pull request costs nothing to refuse.
MAX_BYTES = 1024 * 1024
MAX_NODES = 20_000  # values after alias expansion; 1,000 variables take about 1,000
MAX_DEPTH = 32

_MERGE = "tag:yaml.org,2002:merge"


class _Yaml(CSafeLoader):
    """libyaml's parser (fast, with a line for every node) reading YAML 1.2's plain scalars.

    PyYAML's default, YAML 1.1, reads `on`, `no` and `off` as booleans and `010` as eight;
    YAML 1.2 keeps those words as text (`rollback: off` means "off") and reads `010` as ten.
    """

    def construct_yaml_int(self, node: ScalarNode) -> int:
        """`0x1F`, `0o17`, `0b101`, `1_000`, and `010` as ten."""
        digits = node.value.replace("_", "")
        prefixed = digits.lstrip("+-")[:2] in ("0b", "0o", "0x")
        return int(digits, 0 if prefixed else 10)


_Yaml.yaml_implicit_resolvers = {}  # YAML 1.2's below, instead of the YAML 1.1 ones inherited
for _tag, _pattern, _first in (  # YAML 1.2's core schema, plus the merge key and timestamps
    ("bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("int", r"[-+]?(?:0b[0-1_]+|0o?[0-7_]+|[0-9_]+|0x[0-9a-fA-F_]+)", "-+0123456789"),
    (
        "float",
        r"[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+"
        r"|\.[0-9_]+(?:[eE][-+][0-9]+)?|\.(?:inf|Inf|INF))|\.(?:nan|NaN|NAN)",
        "-+0123456789.",
    ),
    ("null", r"~|null|Null|NULL|", ["~", "n", "N", ""]),
    ("merge", r"<<", "<"),
    (
        "timestamp",
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}"
        r":[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?",
        "0123456789",
    ),
):
    _Yaml.add_implicit_resolver(
        f"tag:yaml.org,2002:{_tag}", re.compile(rf"(?:{_pattern})\Z"), _first
    )
_Yaml.add_constructor("tag:yaml.org,2002:int", _Yaml.construct_yaml_int)


def read_yaml(path: Path, text: str | None = None) -> tuple[Any, dict[str, int]]:
    """The document as plain data (None if empty), and the line of every key and list item.

    Keys are dotted (`env.FOO`, `probes.0.path`). `text`: the document, when it is no file;
    `path` then only names it.
    """
    reader = _Reader(path, text)
    return reader.read(), reader.lines


def join(key: str, name: object) -> str:
    """The dotted key of `name` under `key`."""
    return f"{key}.{name}" if key else str(name)


class _Reader:
    """One file being read, the lines of its keys, and the values built so far."""

    def __init__(self, path: Path, text: str | None = None) -> None:
        self.path = path
        self.text = text
        self.lines: dict[str, int] = {}
        self.yaml: _Yaml  # set by read()
        self.nodes = 0  # values built so far, aliases expanded; bounded by MAX_NODES

    def read(self) -> Any:
        """The document as plain data; fills `lines` for every key and list item."""
        try:
            size = self.path.stat().st_size if self.text is None else len(self.text.encode())
            if size > MAX_BYTES:  # refused before a byte is parsed
                raise SafedeployError(
                    f"the manifest is {size:,} bytes; safedeploy reads at most {MAX_BYTES:,}",
                    where=str(self.path),
                    hint="a manifest describes one service; split or trim it",
                )
            text = self.path.read_text(encoding="utf-8") if self.text is None else self.text
        except (OSError, UnicodeDecodeError) as exc:
            raise SafedeployError(
                f"cannot read the manifest: {exc}", where=str(self.path)
            ) from None
        self.yaml = _Yaml(text)
        try:
            root = self.yaml.get_single_node()
            tree = None if root is None else self._plain(root, "")
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = ", ".join(p for p in (exc.context, exc.problem) if p)
            raise SafedeployError(
                f"invalid YAML: {problem}",
                where=location(self.path, mark.line + 1 if mark else None),
                hint="check indentation, colons, quotes and brackets here and on the line above",
            ) from None
        except YAMLError as exc:
            raise SafedeployError(f"invalid YAML: {exc}", where=str(self.path)) from None
        return tree

    def _plain(self, node: Node, key: str, depth: int = 0) -> Any:
        """Plain Python data from a YAML node, recording the line of each key and list item.

        Aliases are expanded here, so the nodes built and the depth are bounded: a few hundred
        bytes of nested aliases ("billion laughs") or a self-referencing anchor are refused in
        milliseconds instead of growing to gigabytes.
        """
        self.nodes += 1
        if self.nodes > MAX_NODES or depth > MAX_DEPTH:
            what = (
                f"expands to more than {MAX_NODES:,} values"
                if depth <= MAX_DEPTH
                else f"nests deeper than {MAX_DEPTH} levels"
            )
            raise SafedeployError(
                f"the manifest {what} (anchors and aliases included)",
                where=location(self.path, node.start_mark.line + 1, key or None),
                hint=f"a manifest needs neither; keep aliases few and nesting under {MAX_DEPTH}",
            )
        if isinstance(node, SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                child = join(key, index)
                self.lines[child] = item.start_mark.line + 1
                items.append(self._plain(item, child, depth + 1))
            return items
        if isinstance(node, MappingNode):
            data = {}
            for name, (line, value) in self._pairs(node, key, depth).items():
                child = join(key, name)
                self.lines[child] = line
                data[name] = self._plain(value, child, depth + 1)
            return data
        return self.yaml.construct_object(node)

    def _pairs(self, node: MappingNode, key: str, depth: int) -> dict[str, tuple[int, Node]]:
        """A mapping's keys -> (line, value node); keys from a `<<:` merge come after its own.

        A repeated key is an error naming both lines: YAML silently keeping one is how values
        get lost.
        """
        pairs: dict[str, tuple[int, Node]] = {}
        merged: list[Node] = []
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE:
                many = isinstance(value_node, SequenceNode)
                merged += value_node.value if many else [value_node]
                continue
            name = self.yaml.construct_object(key_node, deep=True)
            child = join(key, name)
            if not isinstance(name, str):
                raise SafedeployError(
                    f"the key `{name}` is not text",
                    where=location(self.path, line, child),
                    hint=f'quote it: "{name}":',
                )
            if name in pairs:
                raise SafedeployError(
                    f"`{child}` is given twice, on lines {pairs[name][0]} and {line}",
                    where=location(self.path, line, child),
                    hint="keep one of them",
                )
            pairs[name] = line, value_node
        for source in merged:  # the first merged mapping wins, as in YAML's merge key spec
            if not isinstance(source, MappingNode):
                raise SafedeployError(
                    "invalid YAML: `<<:` merges a mapping or a list of mappings",
                    where=location(self.path, source.start_mark.line + 1, key or None),
                    hint="write `<<: *anchor` or `<<: [*one, *two]`",
                )
            self.nodes += 1  # a merge chain counts like nesting: `&a {<<: *a}` must end
            if depth > MAX_DEPTH or self.nodes > MAX_NODES:
                raise SafedeployError(
                    "the manifest's `<<:` merges go too deep or refer to themselves",
                    where=location(self.path, source.start_mark.line + 1, key or None),
                    hint="merge a plain anchored mapping",
                )
            for name, pair in self._pairs(source, key, depth + 1).items():
                pairs.setdefault(name, pair)
        return pairs
