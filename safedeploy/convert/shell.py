"""Reading a shell script as the shell would: its simple commands, their words, and what the
shell substitutes in them, written as manifest text (`$NAME` becomes `${NAME}`)."""

from __future__ import annotations

import re

from safedeploy.errors import SafedeployError, location
from safedeploy.redact import MASK, is_sensitive_name, looks_like_credential

SUBST = "\x00"  # `\x00N\x00` stands for the script's N-th `$(...)` or backquoted command
DOLLAR = "\x01"  # a `$` the shell leaves alone: in single quotes, or written `\$`
_BREAKS = "\n;&|()"  # what ends a simple command, outside quotes

# Shell text -> manifest text: a substitution, ${...}, $NAME or $1, or a `$` to keep literal.
SHELL = re.compile(
    r"\x00(?P<subst>\d+)\x00"
    r"|\$\{(?P<braced>[^}]*)\}"
    r"|\$(?P<name>[A-Za-z_][A-Za-z0-9_]*|[0-9])"
    r"|[\x01$](?P<brace>\{)?"
)
_BRACED = re.compile(r"[#!]?(?P<name>[A-Za-z_][A-Za-z0-9_]*|[0-9]+)(?P<rest>.*)", re.DOTALL)
PLACEHOLDER = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ASSIGNED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")
_OPTION = re.compile(r"(?<![\w-])--?([A-Za-z][A-Za-z0-9_-]*)")  # `--token` in `--args=--token,x`
_REDIRECT = re.compile(r"(?:[0-9]*|&)(?:>>?|<)&?(?P<target>.*)", re.DOTALL)

# Flags that take no value (besides --no-* and --clear-*): the word after one is not its value.
_SWITCHES = frozenset(
    {
        "-q",
        "--quiet",
        "--async",
        "--debug",
        "--allow-unauthenticated",
        "--cpu-boost",
        "--cpu-throttling",
        "--default-url",
        "--invoker-iam-check",
        "--session-affinity",
        "--use-http2",
    }
)

Flags = list[tuple[str, str | None]]


def split(text: str, source: str) -> tuple[list[tuple[int, str]], list[str]]:
    """The script's simple commands as (line, text), and its command substitutions set aside.

    shlex tokenizes one command well, but knows neither where a command ends, nor `$(...)`, nor
    that `#` starts a comment only at the start of a word; this pass does that much. It also
    marks each `$` the shell leaves alone, since shlex's output no longer tells.
    """
    commands: list[tuple[int, str]] = []
    substitutions: list[str] = []
    chars: list[str] = []
    line = start = opened = 1
    in_double = False
    i = 0

    def keep(chunk: str) -> None:
        nonlocal start
        if not chars and chunk.isspace():
            return
        start = start if chars else line
        chars.append(chunk)

    while i < len(text):
        char = text[i]
        if char == "'" and not in_double:
            end = text.find("'", i + 1)
            if end < 0:
                raise _unclosed(source, line)
            keep(text[i : end + 1].replace("$", DOLLAR))
            line += text.count("\n", i, end)
            i = end + 1
            continue
        if char == "\\":
            escaped = text[i + 1 : i + 2]
            if escaped == "\n":  # a line continuation
                line += 1
            else:  # shlex drops the backslash where the shell does
                keep(DOLLAR if escaped == "$" else char + escaped)
            i += 2
            continue
        if text.startswith("$(", i) or char == "`":
            end = _closing(text, i)
            if end < 0:
                raise _unclosed(source, line)
            substitutions.append(text[i:end])
            keep(f"{SUBST}{len(substitutions) - 1}{SUBST}")
            line += text.count("\n", i, end)
            i = end
            continue
        if char == '"':
            in_double, opened = not in_double, line
        elif not in_double and char == "#" and (not chars or chars[-1][-1].isspace()):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        elif not in_double and char in _BREAKS and not _redirection(text, i):
            if chars:
                commands.append((start, "".join(chars)))
            chars.clear()
            line += 1 if char == "\n" else 0
            i += 1
            continue
        keep(char)
        line += 1 if char == "\n" else 0
        i += 1
    if in_double:
        raise _unclosed(source, opened)
    if chars:
        commands.append((start, "".join(chars)))
    return commands, substitutions


def _closing(text: str, i: int) -> int:
    """Where the `$(...)` or backquoted command at i ends (nested parentheses counted), or -1."""
    if text[i] == "`":
        end = text.find("`", i + 1)
        return end + 1 if end > 0 else -1
    depth = 0
    for j in range(i + 1, len(text)):
        depth += {"(": 1, ")": -1}.get(text[j], 0)
        if depth == 0:
            return j + 1
    return -1


def _redirection(text: str, i: int) -> bool:
    """`2>&1` and `&> log`: an `&` that belongs to a redirection does not end the command."""
    return text[i] == "&" and ">" in (text[i - 1 : i], text[i + 1 : i + 2])


def _unclosed(source: str, line: int) -> SafedeployError:
    return SafedeployError(
        "a quote or `$(` opened here is never closed", where=location(source, line)
    )


def without_redirections(words: list[str]) -> list[str]:
    """The words of a command without `> file`, `2>&1` and the like."""
    kept: list[str] = []
    skip = False
    for word in words:
        match = None if skip else _REDIRECT.fullmatch(word)
        if not skip and match is None:
            kept.append(word)
        skip = match is not None and not match["target"]
    return kept


def parse_flags(words: list[str], lists: frozenset[str] = frozenset()) -> tuple[list[str], Flags]:
    """Positional words, and (flag, value) pairs: `--flag=value`, `--flag value`, or a switch;
    a flag in `lists` takes every word up to the next flag, each as a pair of its own."""
    positionals: list[str] = []
    flags: Flags = []
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if not word.startswith("-") or word == "-":
            positionals.append(word)
            continue
        name, equals, value = word.partition("=")
        if equals:
            flags.append((name, value))
        elif name in _SWITCHES or name.startswith(("--no-", "--clear-")):
            flags.append((name, None))
        elif name in lists and i < len(words) and not words[i].startswith("-"):
            while i < len(words) and not words[i].startswith("-"):
                flags.append((name, words[i]))
                i += 1
        elif i < len(words) and not words[i].startswith("-"):
            flags.append((name, words[i]))
            i += 1
        else:
            flags.append((name, None))
    return positionals, flags


class ShellText:
    """A script's words as manifest text, with the substitutions `split` set aside; what the
    shell would have done to a word and the manifest cannot (run a command, apply a default)
    is kept as a remark about the variable that stands for it."""

    def __init__(self, substitutions: list[str]) -> None:
        self.substitutions = substitutions
        self.remarks: list[tuple[str, str]] = []  # (variable, note) made reading one command

    def text(self, raw: str, key: str) -> str:
        """Shell text as manifest text: each variable a ${NAME}; a `$(...)` a ${KEY} to pass."""

        def replace(match: re.Match[str]) -> str:
            if match["subst"] is not None:
                command = self.substitutions[int(match["subst"])]
                name = re.sub(r"[^A-Z0-9_]", "_", key.upper())
                shown = "a command" if looks_like_credential(command) else command
                self.remarks.append(
                    (name, f"{shown} runs in the shell: pass its output as --var {name}")
                )
                return "${" + name + "}"
            if match["braced"] is not None:
                inner = _BRACED.fullmatch(match["braced"])
                if inner is None:
                    return "$" + match[0]
                name = placeholder(inner["name"])
                if inner["rest"] or match["braced"][:1] in ("#", "!"):
                    self.remarks.append(
                        (
                            name[2:-1],
                            f"{match[0][:2]}{inner['name']}...}} is written as {name}: "
                            "what the shell does to it (a default, a length, a pattern) is lost",
                        )
                    )
                return name
            if match["name"] is not None:
                return placeholder(match["name"])
            return "$${" if match["brace"] else "$"

        return SHELL.sub(replace, raw)

    def raw(self, text: str) -> str:
        """The script's own words: the substitutions and literal `$` put back."""
        restored = re.sub(r"\x00(\d+)\x00", lambda m: self.substitutions[int(m[1])], text)
        return restored.replace(DOLLAR, "$")

    def shown(self, value: str | None, flag: str = "") -> str:
        """A flag or word as a comment may show it: its value masked if it may be a credential."""
        if value is None:
            return flag
        text = self.raw(value)
        shown = MASK if hidden(text, flag) else text
        return f"{flag}={shown}" if flag else shown


def hidden(text: str, name: str = "") -> bool:
    """Whether text may hold a credential: by its name, its shape, or a name inside it
    (`password=...`, `--token ...`), so that it is neither copied nor shown."""
    return (
        is_sensitive_name(name)
        or looks_like_credential(text)
        or any(is_sensitive_name(inner) for inner in _ASSIGNED.findall(text))
        or any(is_sensitive_name(option) for option in _OPTION.findall(text))
    )


def whole(text: str) -> int | str | None:
    """A whole number, or a placeholder the manifest checks once it is filled; else None."""
    if re.fullmatch("[0-9]+", text):
        return int(text)
    return text if PLACEHOLDER.search(text) else None


def literal(text: str) -> str:
    """Text from a file, where `$` means nothing: a `${` stays literal in the manifest."""
    return text.replace("${", "$${")


def placeholder(name: str) -> str:
    """${NAME}; the positional $1 becomes ${ARG1}, since a manifest variable is a name."""
    return "${" + (f"ARG{name}" if name.isdigit() else name) + "}"
