"""What counts as sensitive, and how values are shown: names, credential shapes, look-alikes."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from safedeploy.model import SecretRef
from safedeploy.redact import (
    MASK,
    SCRUB_MIN_LENGTH,
    ScrubbedStream,
    Sensitive,
    forget_all,
    is_sensitive,
    is_sensitive_name,
    looks_like_credential,
    register,
    reveal,
    scrub,
    shown,
)

SENSITIVE_NAMES = {
    "secret": "CLERK_SECRET_KEY",
    "password": "DB_PASSWORD",
    "passwd": "MYSQL_PASSWD",
    "passphrase": "GPG_PASSPHRASE",
    "token": "GITHUB_TOKEN",
    "credential": "GOOGLE_APPLICATION_CREDENTIALS",
    "private key": "JWT_PRIVATE_KEY_PEM",
    "suffix _key": "STRIPE_KEY",
    "api key inside": "OPENAI_API_KEY_PROD",
    "apikey joined": "SENDGRIDAPIKEY",
    "suffix _pass": "SMTP_PASS",
    "lower case": "settings.database_password",
    "kebab case": "api-key",
    "publishable key is still masked": "NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY",
}
PLAIN_NAMES = {
    "url": "DATABASE_URL",
    "host": "REDIS_HOST",
    "keyword inside": "KEYCLOAK_REALM",
    "key prefix": "KEY_VAULT_NAME",
    "keys suffix": "MONKEYS",
    "pass inside": "BYPASS_CACHE",
    "log level": "LOG_LEVEL",
}
CREDENTIALS = {
    "stripe live": "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "stripe test": "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
    "stripe restricted": "rk_live_51H8s9dKj3nQpL0aZ",
    "aws access key": "AKIAIOSFODNN7EXAMPLE",
    "pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
    "pem pkcs8": "-----BEGIN PRIVATE KEY-----\nMIIE",
    "url with password": "postgresql://app:hunter2@10.0.0.5:5432/db",
    "redis password only": "redis://:hunter2@cache:6379/0",
    "url inside text": "primary=mysql://root:toor@db/app",
    "github classic": "ghp_" + "a" * 36,
    "github fine-grained": "github_pat_11ABCDEFG0123456789_abcdefghij",
    "slack bot": "xoxb-1234567890-abcdefghij",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.sig",
    "google api key": "AIza" + "B" * 35,
}
LOOK_ALIKES = {
    "url without password": "postgresql://app@10.0.0.5:5432/db",
    "url with empty password": "postgresql://app:@db/app",
    "cloudsql socket": "postgresql://app@/db?host=/cloudsql/p:r:i",
    "https url": "https://api.example.com/v1?key=public",
    "stripe publishable": "pk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "bare stripe prefix": "sk_live_",
    "akia too short": "AKIA1234",
    "public pem": "-----BEGIN PUBLIC KEY-----",
    "plain word": "production",
    "jwt-like header only": "eyJhbGciOiJIUzI1NiJ9",
    "malformed url": "http://[::1",
}


@pytest.mark.parametrize("name", SENSITIVE_NAMES.values(), ids=SENSITIVE_NAMES.keys())
def test_sensitive_names(name: str) -> None:
    assert is_sensitive_name(name)


@pytest.mark.parametrize("name", PLAIN_NAMES.values(), ids=PLAIN_NAMES.keys())
def test_plain_names(name: str) -> None:
    assert not is_sensitive_name(name)


@pytest.mark.parametrize("value", CREDENTIALS.values(), ids=CREDENTIALS.keys())
def test_credential_values(value: str) -> None:
    assert looks_like_credential(value)
    assert shown("HARMLESS_NAME", value) == MASK


@pytest.mark.parametrize("value", LOOK_ALIKES.values(), ids=LOOK_ALIKES.keys())
def test_credential_look_alikes(value: str) -> None:
    assert not looks_like_credential(value)
    assert shown("HARMLESS_NAME", value) == value


def test_secret_reference_is_never_sensitive() -> None:
    ref = SecretRef("db-password", "7")
    assert not is_sensitive("DB_PASSWORD", ref)
    assert shown("DB_PASSWORD", ref) == "secret:db-password@7"


def test_shown() -> None:
    assert shown("DB_PASSWORD", None) is None
    assert shown("DB_PASSWORD", "hunter2") == MASK
    assert shown("LOG_LEVEL", "debug") == "debug"
    assert is_sensitive("DB_PASSWORD", "")
    assert not is_sensitive("LOG_LEVEL", "debug")


# -- Sensitive and the scrubber ----------------------------------------------------------------


@pytest.fixture
def scrubber() -> Iterator[None]:
    forget_all()
    yield
    forget_all()


def test_a_sensitive_value_shows_as_the_mask_however_it_is_printed(scrubber: None) -> None:
    value = Sensitive("hunter2-pin-0420")
    assert (str(value), f"{value}", f"{value:>12}", "%s" % value) == (  # noqa: UP031 (the old way too)
        MASK,
        MASK,
        f"{MASK:>12}",
        MASK,
    )
    assert "hunter2" not in repr(value) and "hunter2" not in repr({"K": value})
    assert value.reveal() == "hunter2-pin-0420" == reveal(value)
    assert reveal("plain") == "plain"
    assert is_sensitive("LOG_LEVEL", value)  # where it came from wins over its name


def test_the_scrubber_masks_every_registered_value_in_any_text(scrubber: None) -> None:
    Sensitive("hunter2-pin-0420")
    register('multi\nline "quoted" value')
    text = 'error: bad dsn hunter2-pin-0420; {"v": "multi\\nline \\"quoted\\" value"}'
    assert scrub(text) == f'error: bad dsn {MASK}; {{"v": "{MASK}"}}'
    assert scrub('line "quoted" value') == MASK  # one line of a multi-line value


def test_short_values_are_not_registered(scrubber: None) -> None:
    """Scrubbing `8080` or `true` everywhere would mangle output; provenance still masks them."""
    register("x" * (SCRUB_MIN_LENGTH - 1))
    register("true")
    assert scrub('{"ok": true, "x": "xxxxx"}') == '{"ok": true, "x": "xxxxx"}'


def test_a_scrubbed_stream_masks_what_any_writer_sends(scrubber: None) -> None:
    out = io.StringIO()
    stream = ScrubbedStream(out)
    Sensitive("sk_canary_0451")
    print("platform said: sk_canary_0451 is invalid", file=stream)  # type: ignore[arg-type]
    assert out.getvalue() == f"platform said: {MASK} is invalid\n"
    assert stream.getvalue() == out.getvalue()  # the rest is the wrapped stream's


@pytest.mark.parametrize(
    "value", ["Bearer hunter2", "host=db user=app password=hunter2", "a?pwd=hunter2"]
)
def test_bearer_tokens_and_dsn_passwords_look_like_credentials(value: str) -> None:
    assert looks_like_credential(value)


def test_privatekey_without_underscore_is_a_sensitive_name() -> None:
    assert is_sensitive_name("PRIVATEKEY")
