"""The AWS CLI's shorthand, read as the CLI reads it.

The parsing cases are those of the AWS CLI's own tests/unit/test_shorthand.py (Apache-2.0), so
a difference from the CLI shows up here; the tests below them are ours.
"""

from __future__ import annotations

import pytest

from safedeploy.convert.shorthand import ShorthandError, Value, looks_like_json, parse

# From aws-cli tests/unit/test_shorthand.py: PARSING_TEST_CASES.
CLI_CASES: tuple[tuple[str, dict[str, Value]], ...] = (
    # Key val pairs with scalar value.
    ("foo=bar", {"foo": "bar"}),
    ("foo=bar", {"foo": "bar"}),
    ("foo=bar,baz=qux", {"foo": "bar", "baz": "qux"}),
    ("a=b,c=d,e=f", {"a": "b", "c": "d", "e": "f"}),
    # Empty values are allowed.
    ("foo=", {"foo": ""}),
    ("foo=,bar=", {"foo": "", "bar": ""}),
    # Unicode is allowed.
    ("foo=\u2713", {"foo": "\u2713"}),
    ("foo=\u2713,\u2713", {"foo": ["\u2713", "\u2713"]}),
    # Key val pairs with csv values.
    ("foo=a,b", {"foo": ["a", "b"]}),
    ("foo=a,b,c", {"foo": ["a", "b", "c"]}),
    ("foo=a,b,bar=c,d", {"foo": ["a", "b"], "bar": ["c", "d"]}),
    ("foo=a,b,c,bar=d,e,f", {"foo": ["a", "b", "c"], "bar": ["d", "e", "f"]}),
    # Spaces in values are allowed.
    ("foo=a,b=with space", {"foo": "a", "b": "with space"}),
    # Trailing spaces are still ignored.
    ("foo=a,b=with trailing space  ", {"foo": "a", "b": "with trailing space"}),
    ("foo=first space", {"foo": "first space"}),
    ("foo=a space,bar=a space,baz=a space", {"foo": "a space", "bar": "a space", "baz": "a space"}),
    # Dashes are allowed in key names.
    ("with-dash=bar", {"with-dash": "bar"}),
    # Underscore are also allowed.
    ("with_underscore=bar", {"with_underscore": "bar"}),
    # Dots are allowed.
    ("with.dot=bar", {"with.dot": "bar"}),
    # Pound signs are allowed.
    ("#key=value", {"#key": "value"}),
    # Forward slashes are allowed in keys.
    ("some/thing=value", {"some/thing": "value"}),
    # Colon chars are allowed in keys:
    ("aws:service:region:124:foo/bar=baz", {"aws:service:region:124:foo/bar": "baz"}),
    # Explicit lists.
    ("foo=[]", {"foo": []}),
    ("foo=[a]", {"foo": ["a"]}),
    ("foo=[a,b]", {"foo": ["a", "b"]}),
    ("foo=[a,b,c]", {"foo": ["a", "b", "c"]}),
    ("foo=[a,b],bar=c,d", {"foo": ["a", "b"], "bar": ["c", "d"]}),
    ("foo=[a,b],bar=[c,d]", {"foo": ["a", "b"], "bar": ["c", "d"]}),
    ("foo=a,b,bar=[c,d]", {"foo": ["a", "b"], "bar": ["c", "d"]}),
    ("foo=[a=b,c=d]", {"foo": ["a=b", "c=d"]}),
    ("foo=[a=b,c=d]", {"foo": ["a=b", "c=d"]}),
    # Lists with whitespace.
    ("foo=[ a , b  , c  ]", {"foo": ["a", "b", "c"]}),
    ("foo  =  [ a , b  , c  ]", {"foo": ["a", "b", "c"]}),
    ("foo=[,,]", {"foo": ["", ""]}),
    # Single quoted strings.
    ("foo='bar'", {"foo": "bar"}),
    ("foo='bar,baz'", {"foo": "bar,baz"}),
    # Single quoted strings for each value in a CSV list.
    ("foo='bar','baz'", {"foo": ["bar", "baz"]}),
    # Can mix single quoted and non quoted values.
    ("foo=bar,'baz'", {"foo": ["bar", "baz"]}),
    # Quoted strings can include chars not allowed in unquoted strings.
    ("foo=bar,'baz=qux'", {"foo": ["bar", "baz=qux"]}),
    ("foo=bar,'--option=bar space'", {"foo": ["bar", "--option=bar space"]}),
    # Can escape the single quote.
    ("foo='bar\\'baz'", {"foo": "bar'baz"}),
    ("foo='bar\\\\baz'", {"foo": "bar\\baz"}),
    # Double quoted strings.
    ('foo="bar"', {"foo": "bar"}),
    ('foo="bar,baz"', {"foo": "bar,baz"}),
    ('foo="bar","baz"', {"foo": ["bar", "baz"]}),
    ('foo=bar,"baz=qux"', {"foo": ["bar", "baz=qux"]}),
    ('foo=bar,"--option=bar space"', {"foo": ["bar", "--option=bar space"]}),
    ('foo="bar\\"baz"', {"foo": 'bar"baz'}),
    ('foo="bar\\\\baz"', {"foo": "bar\\baz"}),
    # Can escape comma in CSV list.
    ("foo=a\\,b", {"foo": "a,b"}),
    ("foo=a\\,b", {"foo": "a,b"}),
    ("foo=a\\,", {"foo": "a,"}),
    ("foo=\\,", {"foo": ","}),
    ("foo=a,b\\,c", {"foo": ["a", "b,c"]}),
    ("foo=a,b\\,", {"foo": ["a", "b,"]}),
    ("foo=a,\\,bc", {"foo": ["a", ",bc"]}),
    # Ignores whitespace around '=' and ','
    ("foo= bar", {"foo": "bar"}),
    ("foo =bar", {"foo": "bar"}),
    ("foo = bar", {"foo": "bar"}),
    ("foo  =   bar", {"foo": "bar"}),
    ("foo = bar,baz = qux", {"foo": "bar", "baz": "qux"}),
    ("a = b,  c = d , e = f", {"a": "b", "c": "d", "e": "f"}),
    ("foo = ", {"foo": ""}),
    ("a=b,c=  d,  e,  f", {"a": "b", "c": ["d", "e", "f"]}),
    ("Name=foo,Values=  a  ,  b  ,  c  ", {"Name": "foo", "Values": ["a", "b", "c"]}),
    ("Name=foo,Values= a,  b  ,  c", {"Name": "foo", "Values": ["a", "b", "c"]}),
    # Can handle newlines between values.
    ("Name=foo,\nValues=a,b,c", {"Name": "foo", "Values": ["a", "b", "c"]}),
    ("A=b,\nC=d,\nE=f\n", {"A": "b", "C": "d", "E": "f"}),
    # Hashes
    ("Name={foo=bar,baz=qux}", {"Name": {"foo": "bar", "baz": "qux"}}),
    ("Name={foo=[a,b,c],bar=baz}", {"Name": {"foo": ["a", "b", "c"], "bar": "baz"}}),
    ("Name={foo=bar},Bar=baz", {"Name": {"foo": "bar"}, "Bar": "baz"}),
    ("Bar=baz,Name={foo=bar}", {"Bar": "baz", "Name": {"foo": "bar"}}),
    ("a={b={c=d}}", {"a": {"b": {"c": "d"}}}),
    ("a={b={c=d,e=f},g=h}", {"a": {"b": {"c": "d", "e": "f"}, "g": "h"}}),
    # Combining lists and hashes.
    ("Name=[{foo=bar}, {baz=qux}]", {"Name": [{"foo": "bar"}, {"baz": "qux"}]}),
    # Combining hashes and lists.
    ("Name=[{foo=[a,b]}, {bar=[c,d]}]", {"Name": [{"foo": ["a", "b"]}, {"bar": ["c", "d"]}]}),
    # key-value pairs using @= syntax
    ("foo@=bar", {"foo": "bar"}),
    ("foo@=bar,baz@=qux", {"foo": "bar", "baz": "qux"}),
    ("foo@=,bar@=", {"foo": "", "bar": ""}),
    ("foo@=\u2713,\u2713", {"foo": ["\u2713", "\u2713"]}),
    ("foo@=a,b,bar=c,d", {"foo": ["a", "b"], "bar": ["c", "d"]}),
    ("foo=a,b@=with space", {"foo": "a", "b": "with space"}),
    ("foo=a,b@=with trailing space  ", {"foo": "a", "b": "with trailing space"}),
    ("aws:service:region:124:foo/bar@=baz", {"aws:service:region:124:foo/bar": "baz"}),
    ("foo=[a,b],bar@=[c,d]", {"foo": ["a", "b"], "bar": ["c", "d"]}),
    ("foo  @=  [ a , b  , c  ]", {"foo": ["a", "b", "c"]}),
    ("A=b,\nC@=d,\nE@=f\n", {"A": "b", "C": "d", "E": "f"}),
    ("Bar@=baz,Name={foo@=bar}", {"Bar": "baz", "Name": {"foo": "bar"}}),
    ("Name=[{foo@=bar}, {baz=qux}]", {"Name": [{"foo": "bar"}, {"baz": "qux"}]}),
    ("Name=[{foo@=[a,b]}, {bar=[c,d]}]", {"Name": [{"foo": ["a", "b"]}, {"bar": ["c", "d"]}]}),
)


@pytest.mark.parametrize(("text", "expected"), CLI_CASES)
def test_parses_as_the_cli_does(text: str, expected: dict[str, Value]) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "foo",
        'foo="bar',
        '"foo=bar',
        "foo='bar",
        "foo=[bar",
        "foo={bar",
        "foo={bar}",
        "foo={bar=bar",
        "foo=bar,",
        "foo==bar,\nbar=baz",
        "foo=bar,foo=qux",  # a duplicate key would silently set only one of the values
        'foo="' + "\\" * 100,  # unclosed, then backslashes: refused without backtracking for ever
        "foo='" + "\\" * 100,
    ],
)
def test_refuses_what_the_cli_refuses(text: str) -> None:
    with pytest.raises(ShorthandError):
        parse(text)


def test_errors_say_where_and_never_repeat_the_value() -> None:
    with pytest.raises(ShorthandError) as error:
        parse("a=b,c==d")
    assert str(error.value) == "expected ',', found '=' at character 7"
    with pytest.raises(ShorthandError) as error:
        parse("Password=hunter2,Password=hunter3")
    assert "hunter" not in str(error.value)
    assert str(error.value).startswith('second instance of key "Password"')


def test_key_at_equals_reads_files_and_plain_equals_does_not() -> None:
    files = {"file://foo": "file-contents123"}
    read = files.get
    assert parse("Foo@=file://foo,Bar={Baz@=file://foo}", read) == {
        "Foo": "file-contents123",
        "Bar": {"Baz": "file-contents123"},
    }
    assert parse("Bar@={Baz=file://foo}", read) == {"Bar": {"Baz": "file://foo"}}
    assert parse("Foo@=foo,Bar={Baz@=foo}", read) == {"Foo": "foo", "Bar": {"Baz": "foo"}}
    assert parse("Foo@=[a, file://foo]", read) == {"Foo": ["a", "file-contents123"]}
    assert parse("Foo=file://foo", read) == {"Foo": "file://foo"}


@pytest.mark.parametrize(
    ("text", "json"),
    [("{}", True), ("  [1]", True), ("\n{", True), ("Cpu=1", False), ("file://x", False)],
)
def test_json_is_what_starts_with_a_brace_or_bracket(text: str, json: bool) -> None:
    assert looks_like_json(text) is json
