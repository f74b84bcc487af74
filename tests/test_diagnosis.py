"""diagnosis and untrusted: untrusted lines made safe, the lines that matter, hints that hold."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from safedeploy.cancel import CancelToken
from safedeploy.diagnosis import (
    MAX_LINES,
    Explanation,
    Hint,
    Sent,
    explain,
    failed_release,
    gather,
    pick,
    rank,
)
from safedeploy.facts import Condition, Diagnosis, LogLine, Unread
from safedeploy.history import Outcome, Release
from safedeploy.model import SecretRef
from safedeploy.probes import ProbeResult
from safedeploy.redact import MASK, Sensitive, forget_all
from safedeploy.untrusted import LINE_LIMIT, clean

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_scrubber() -> Iterator[None]:
    forget_all()
    yield
    forget_all()


def lines(*texts: str, severity: str | None = None) -> tuple[LogLine, ...]:
    return tuple(LogLine(None, severity, text) for text in texts)


def hints_of(
    *texts: str, sent: Sent | None = None, conditions: tuple[Condition, ...] = ()
) -> list[Hint]:
    found = explain(
        Diagnosis("test", "api-2", conditions=conditions, lines=lines(*texts)), sent or Sent()
    )
    return list(found.hints)


# -- untrusted text ------------------------------------------------------------------------------


@given(st.text(max_size=2000))
def test_a_clean_line_is_bounded_and_has_no_control_character(text: str) -> None:
    shown = clean(text)
    assert len(shown) <= LINE_LIMIT
    assert not any(ord(c) < 0x20 or c == "\x7f" for c in shown)


@given(
    secret=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=8),
    before=st.text(max_size=40),
    after=st.text(max_size=40),
)
def test_a_registered_value_never_shows(secret: str, before: str, after: str) -> None:
    Sensitive(secret)
    assert secret not in clean(before + secret + after, 10_000)


@pytest.mark.parametrize(
    ("line", "hidden"),
    [
        ("DATABASE_URL=postgres://app:s3cret-pw@db:5432/x", "s3cret-pw"),
        ("redis://:onlypass@cache:6379", "onlypass"),
        ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
        ('{"api_key": "k-123456", "port": 8080}', "k-123456"),
        ("STRIPE_SECRET_KEY = sk_test_1234567890ab", "sk_test_1234567890ab"),
        ("using key AKIAABCDEFGHIJKLMNOP", "AKIAABCDEFGHIJKLMNOP"),
        ("token=ghp_" + "a" * 36, "ghp_" + "a" * 36),
        ("-----BEGIN RSA PRIVATE KEY----- MIIEow", "MIIEow"),
        ("dsn host=db password=hunter22 user=x", "hunter22"),
    ],
)
def test_credential_shapes_are_masked(line: str, hidden: str) -> None:
    shown = clean(line)
    assert hidden not in shown
    assert MASK in shown


def test_escapes_are_dropped_and_controls_made_visible() -> None:
    assert clean("\x1b[31mERROR\x1b[0m\x1b]0;title\x07 done\r\n") == "ERROR done\\r\\n"
    assert clean("KeyError: 'CLERK_SECRET_KEY'") == "KeyError: 'CLERK_SECRET_KEY'"
    assert clean("x" * 500).endswith("…")


# -- the lines that matter -----------------------------------------------------------------------


def test_errors_and_warnings_rank_by_severity_then_words() -> None:
    assert rank(LogLine(None, "ERROR", "anything")) == 2
    assert rank(LogLine(None, None, "KeyError: 'X'")) == 2
    assert rank(LogLine(None, None, "WARNING: slow")) == 1
    assert rank(LogLine(None, "INFO", "GET / 200")) == 0
    assert rank(LogLine(None, "INFO", "an Error in a word is still info")) == 0


@given(
    st.lists(st.sampled_from(["GET / 200", "WARNING: slow", "ValueError: x", "ok"]), max_size=80)
)
def test_pick_keeps_order_limit_and_every_error_that_fits(texts: list[str]) -> None:
    all_lines = lines(*texts)
    picked = pick(all_lines)
    assert len(picked) == min(len(all_lines), MAX_LINES)
    positions = [i for i, line in enumerate(all_lines) if line in picked]
    assert positions == sorted(positions)
    matters = [line for line in all_lines if rank(line)]
    kept = [line for line in picked if rank(line)]
    assert len(kept) == min(len(matters), MAX_LINES)


def test_the_last_errors_are_kept_with_the_lines_around_them() -> None:
    noise = [f"GET /{i} 200" for i in range(100)]
    picked = pick(lines(*noise, "Traceback (most recent call last):", "KeyError: 'X'"))
    assert picked[-1].text == "KeyError: 'X'"
    assert picked[-2].text.startswith("Traceback")
    assert len(picked) == MAX_LINES


# -- hints ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "KeyError: 'CLERK_SECRET_KEY'",
        'KeyError: "CLERK_SECRET_KEY"',
        "Error: CLERK_SECRET_KEY is not set",
        "CLERK_SECRET_KEY is required",
        "missing required environment variable: CLERK_SECRET_KEY",
        "pydantic: CLERK_SECRET_KEY must be set",
    ],
)
def test_a_missing_variable_neither_declared_nor_live_goes_to_secrets(line: str) -> None:
    (hint,) = hints_of(line)
    assert hint.key == "secrets.CLERK_SECRET_KEY"
    assert "is not set on the new revision: add it to `secrets:`" in hint.text


def test_a_missing_plain_variable_goes_to_env() -> None:
    (hint,) = hints_of("KeyError: 'REGION_NAME'")
    assert hint.key == "env.REGION_NAME"


def test_a_variable_the_plan_removed_says_so() -> None:
    sent = Sent(env={"A": "1"}, removed=frozenset({"API_TOKEN"}))
    (hint,) = hints_of("API_TOKEN is not set", sent=sent)
    assert hint.key == "secrets.API_TOKEN"
    assert "was removed by this deploy" in hint.text


def test_a_variable_that_was_set_gets_no_hint() -> None:
    assert hints_of("KeyError: 'CLERK_SECRET_KEY'", sent=Sent(env={"CLERK_SECRET_KEY": "x"})) == []


def test_the_app_listening_elsewhere_is_a_port_hint() -> None:
    (hint,) = hints_of("Server listening on port 3000", sent=Sent(settings={"port": 8080}))
    assert hint.key == "settings.port"
    assert "3000" in hint.text and "8080" in hint.text


def test_the_platform_port_message_alone_is_a_port_hint_but_not_after_a_crash() -> None:
    condition = Condition(
        "Ready",
        "CONDITION_FAILED",
        "HealthCheckContainerError",
        "The user-provided container failed to start and listen on the port defined provided "
        "by the PORT=8080 environment variable.",
    )
    (hint,) = hints_of("starting", conditions=(condition,))
    assert hint.key == "settings.port" and "(8080)" in hint.text
    crashed = hints_of("KeyError: 'DATABASE_URL'", conditions=(condition,))
    assert [h.key for h in crashed] == ["env.DATABASE_URL"]


def test_cloud_sql_not_reachable_names_the_instances_and_the_role() -> None:
    sent = Sent(settings={"cloudsql_instances": ["p:us-central1:db"]})
    (hint,) = hints_of("Cloud SQL instance p:us-central1:db is not reachable", sent=sent)
    assert hint.key == "settings.cloudsql_instances"
    assert "`p:us-central1:db`" in hint.text and "roles/cloudsql.client" in hint.text
    assert hints_of("cloudsql: NOT_AUTHORIZED for instance")[0].key == "settings.cloudsql_instances"


def test_permission_denied_on_a_secret_names_the_role_and_the_variable() -> None:
    sent = Sent(
        env={"DB_PASSWORD": SecretRef("db-password")}, settings={"service_account": "run@p"}
    )
    (hint,) = hints_of(
        "Permission denied on secret: projects/p/secrets/db-password/versions/latest", sent=sent
    )
    assert hint.key == "secrets.DB_PASSWORD"
    assert "`run@p`" in hint.text and "roles/secretmanager.secretAccessor" in hint.text


def test_ordinary_lines_give_no_hint() -> None:
    assert hints_of("GET /health 200", "listening on port 8080", "WARNING: slow start") == []


# -- gathering -----------------------------------------------------------------------------------


class Reader:
    def __init__(self, result: Diagnosis | Exception) -> None:
        self.result = result

    def diagnose(self, revision: str, since: datetime, cancel: CancelToken) -> Diagnosis:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def test_a_failure_to_read_is_a_note() -> None:
    why = gather(Reader(RuntimeError("boom")), "api-2", NOW, Sent(), (), CancelToken())  # type: ignore[arg-type]
    assert why is not None and "boom" in why.notes[0]


def test_unread_logs_say_what_they_need() -> None:
    unread = Unread("Cloud Logging entries", "logging.logEntries.list", "403 denied")
    why = gather(
        Reader(Diagnosis("x", "api-2", unread=(unread,))), "api-2", NOW, Sent(), (), CancelToken()
    )  # type: ignore[arg-type]
    assert why is not None
    assert why.notes == (
        "Cloud Logging entries could not be read (403 denied): it needs logging.logEntries.list",
    )


def test_a_signal_skips_the_diagnosis() -> None:
    token = CancelToken()
    token.cancel("SIGINT")
    assert gather(Reader(Diagnosis("x", "api-2")), "api-2", NOW, Sent(), (), token) is None  # type: ignore[arg-type]


def test_a_failed_probe_body_is_part_of_the_evidence() -> None:
    probe = ProbeResult(
        "health",
        "http://x/health",
        False,
        1,
        500,
        3.0,
        3.0,
        "status 500, expected 200",
        body='{"detail": "CLERK_SECRET_KEY is not set"}',
    )
    why = explain(Diagnosis("x", "api-2"), Sent(), [probe])
    assert why.probe is not None and "answered 500" in why.probe
    assert [h.key for h in why.hints] == ["secrets.CLERK_SECRET_KEY"]


def test_an_explanation_survives_its_record() -> None:
    from dataclasses import asdict

    why = explain(
        Diagnosis(
            "x",
            "api-2",
            "exit 1",
            (Condition("Ready", "False", "R", "m"),),
            lines("KeyError: 'ABC_TOKEN'"),
        ),
        Sent(),
    )
    assert Explanation.from_record(asdict(why)) == why


def test_the_last_failed_release_and_the_success_after_it() -> None:
    def release(n: int, outcome: Outcome) -> Release:
        return Release(
            f"2026-{n}", "api", "deploy", "t", "u", None, None, (), {}, f"api-{n}", outcome
        )

    releases = [
        release(1, Outcome.ROLLED_BACK),
        release(2, Outcome.SUCCEEDED),
        release(3, Outcome.UNCHANGED),
    ]
    found, later = failed_release(releases)
    assert found is not None and found.id == "2026-1" and later is not None and later.id == "2026-2"
    assert failed_release(releases[1:]) == (None, None)
    assert failed_release(releases, "2026-2")[0] == releases[1]


def test_the_platform_refusing_a_secret_is_a_hint_from_its_condition() -> None:
    sent = Sent(env={"DB_PASSWORD": SecretRef("projects/p/secrets/db-password")})
    condition = Condition(
        "Ready",
        "CONDITION_FAILED",
        "SECRETS_ACCESS_CHECK_FAILED",
        "Permission denied on secret: projects/p/secrets/db-password/versions/latest for "
        "Revision service account run@p.iam.gserviceaccount.com.",
    )
    (hint,) = hints_of("starting", sent=sent, conditions=(condition,))
    assert hint.key == "secrets.DB_PASSWORD"
    assert "roles/secretmanager.secretAccessor" in hint.text
