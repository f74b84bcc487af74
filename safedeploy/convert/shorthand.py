"""The AWS CLI's shorthand syntax (`Cpu=2048,Memory=4096`, `Tags=[{Key=a,Value=b}]`), read the
way the CLI reads it.

Grammar and quirks follow `awscli/shorthand.py` (ShorthandParser, Apache-2.0) case for case:
csv values that stop where the next `key=` begins, quoted and escaped values, nested `{...}` and
`[...]`, whitespace around `=` and `,`, a duplicate top-level key refused, and `key@=file://...`
read from a file. As in the CLI, every value is text: the service's model gives it a type later.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable

Value = str | list["Value"] | dict[str, "Value"]
Paramfile = Callable[[str], str | None]  # `file://x` -> its text; None when not a file reference

_KEY_CHARS = frozenset(string.ascii_letters + string.digits + "-_.#/:")
_WHITESPACE = frozenset(string.whitespace)
# Where an unquoted value may start, and what may follow in a first or a later csv value: the
# CLI's own character ranges. A first value stops at `,`, `]` and `}`; a later one at `,` and `=`.
_START = r"!#-&(-+\--<>-Z\\-z|-\uffff"
_FIRST_FOLLOW = r"\s!#-&(-+\--\\^-|~-\uffff"
_SECOND_FOLLOW = r"\s!#-&(-+\--<>-\uffff"
_FIRST = re.compile(rf"(?:\\,|[{_START}])(?:\\,|[{_FIRST_FOLLOW}])*")
_SECOND = re.compile(rf"(?:\\,|[{_START}])(?:\\,|[{_SECOND_FOLLOW}])*")
_SINGLE_QUOTED = re.compile(r"'(?:\\'|[^'])*'")
_DOUBLE_QUOTED = re.compile(r'"(?:\\"|[^"])*"')


class ShorthandError(ValueError):
    """Where the text stops being shorthand. The message never repeats the text: it may hold a
    credential."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(f"{message} at character {index + 1}")
        self.index = index


def looks_like_json(value: str) -> bool:
    """The CLI's test: a value that starts with `{` or `[` is JSON, anything else shorthand."""
    return value.strip().startswith(("{", "["))


def parse(text: str, paramfile: Paramfile | None = None) -> dict[str, Value]:
    """`a=b,c=d` as {"a": "b", "c": "d"}; `paramfile` reads the values written `key@=file://`."""
    return _Parser(text, paramfile or (lambda value: None)).parameter()


class _Parser:
    """One pass over one value, backtracking only where the CLI does: to the last `,` of a csv
    list when what follows it turns out to be the next `key=`."""

    def __init__(self, text: str, paramfile: Paramfile) -> None:
        self.text = text
        self.index = 0
        self.paramfile = paramfile
        self.from_file = False  # the current key was written `key@=`

    def parameter(self) -> dict[str, Value]:
        # parameter = keyval *("," keyval)
        params: dict[str, Value] = {}
        key, value = self.keyval()
        params[key] = value
        last = self.index
        while self.index < len(self.text):
            self.expect(",", whitespace=True)
            key, value = self.keyval()
            if key in params:
                raise ShorthandError(
                    f'second instance of key "{key}" (often a "," where a space was meant)',
                    last + 1,
                )
            params[key] = value
            last = self.index
        return params

    def keyval(self) -> tuple[str, Value]:
        # keyval = key "=" values / key "@=" values-or-files
        key = self.key()
        self.equals()
        return key, self.values()

    def key(self) -> str:
        start = self.index
        while self.index < len(self.text) and self.text[self.index] in _KEY_CHARS:
            self.index += 1
        return self.text[start : self.index]

    def equals(self) -> None:
        """`=`, or `@=` for a value that may name a file to read."""
        self.from_file = False
        try:
            self.expect("@", whitespace=True)
            self.from_file = True
        except ShorthandError:
            pass
        self.expect("=", whitespace=True)

    def values(self) -> Value:
        # values = csv-list / explicit-list / hash-literal
        if self.at_end():
            return ""
        if self.current() == "[":
            return self.explicit_list()
        if self.current() == "{":
            return self.hash_literal()
        return self.csv_value()

    def csv_value(self) -> Value:
        """`a` is a scalar, `a,b` a list; the list ends before a later `key=`."""
        first = self.first_value()
        self.skip_whitespace()
        if self.at_end() or self.text[self.index] != ",":
            return first
        self.expect(",", whitespace=True)
        items: list[Value] = [first]
        while True:
            try:
                current = self.second_value()
                self.skip_whitespace()
                if self.at_end():
                    items.append(current)
                    break
                self.expect(",", whitespace=True)
                items.append(current)
            except ShorthandError:
                if self.at_end():
                    raise
                self.backtrack_to(",")
                break
        return first if len(items) == 1 else items

    def explicit_list(self) -> list[Value]:
        self.expect("[", whitespace=True)
        items: list[Value] = []
        while self.current() != "]":
            items.append(self.explicit_value())
            self.skip_whitespace()
            if self.current() != "]":
                self.expect(",")
                self.skip_whitespace()
        self.expect("]")
        return items

    def explicit_value(self) -> Value:
        if self.current() == "[":
            return self.explicit_list()
        if self.current() == "{":
            return self.hash_literal()
        return self.first_value()

    def hash_literal(self) -> dict[str, Value]:
        """`{a=b,c=[d]}`; as in the CLI, a repeated key here keeps the last value."""
        self.expect("{", whitespace=True)
        members: dict[str, Value] = {}
        while self.current() != "}":
            key = self.key()
            self.equals()
            value = self.explicit_value()
            self.skip_whitespace()
            if self.current() != "}":
                self.expect(",")
                self.skip_whitespace()
            members[key] = value
        self.expect("}")
        return members

    def first_value(self) -> str:
        if self.current() in ("'", '"'):
            return self.quoted()
        match = _FIRST.match(self.text, self.index)
        if match is None:
            return ""
        self.index = match.end()
        return self.resolved(match[0].replace("\\,", ",").rstrip())

    def second_value(self) -> str:
        if self.current() in ("'", '"'):
            return self.quoted()
        match = _SECOND.match(self.text, self.index)
        if match is None:
            raise ShorthandError("expected a value", self.index)
        self.index = match.end()
        return self.resolved(match[0].replace("\\,", ",").rstrip())

    def quoted(self) -> str:
        """'...' or "...": a backslash escapes the quote and itself, and nothing else."""
        quote = self.text[self.index]
        pattern = _SINGLE_QUOTED if quote == "'" else _DOUBLE_QUOTED
        match = pattern.match(self.text, self.index)
        if match is None:
            raise ShorthandError(f"a {quote} that is never closed", self.index)
        self.index = match.end()
        value = match[0][1:-1].replace(f"\\{quote}", quote).replace("\\\\", "\\")
        return self.resolved(value)

    def resolved(self, value: str) -> str:
        if not self.from_file:
            return value
        read = self.paramfile(value)
        return value if read is None else read

    def expect(self, char: str, whitespace: bool = False) -> None:
        if whitespace:
            self.skip_whitespace()
        if self.at_end():
            raise ShorthandError(f"expected '{char}', found the end", self.index)
        if self.text[self.index] != char:
            raise ShorthandError(f"expected '{char}', found '{self.text[self.index]}'", self.index)
        self.index += 1
        if whitespace:
            self.skip_whitespace()

    def current(self) -> str | None:
        return self.text[self.index] if self.index < len(self.text) else None

    def at_end(self) -> bool:
        return self.index >= len(self.text)

    def backtrack_to(self, char: str) -> None:
        while self.index >= 0 and self.text[self.index] != char:
            self.index -= 1

    def skip_whitespace(self) -> None:
        while self.index < len(self.text) and self.text[self.index] in _WHITESPACE:
            self.index += 1
