"""What counts as sensitive, and how values are shown: names, credential shapes, look-alikes."""

from __future__ import annotations

import pytest

from safedeploy.model import SecretRef
from safedeploy.redact import MASK, is_sensitive, is_sensitive_name, looks_like_credential, shown

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
