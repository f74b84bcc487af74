"""The manifest `import` writes loads back to the live spec, and never holds a credential."""

from __future__ import annotations

from pathlib import Path

from safedeploy.importer import manifest_text
from safedeploy.manifest import load_manifest
from safedeploy.model import SecretRef, ServiceSpec

CANARY = "sk_live_canary0123456789abcdef"


def test_import_round_trips_through_the_loader(tmp_path: Path) -> None:
    live = ServiceSpec(
        image="gcr.io/p/api:v41",
        env={
            "GREETING": "hello ${NAME} # not a comment",
            "REDIS_PORT": "6379",
            "ENABLED": "yes",
            "CLERK_SECRET_KEY": SecretRef("clerk-secret-key"),
            "DATABASE_URL": SecretRef("database-url", "7"),
            "STRIPE_KEY": CANARY,
        },
        settings={"memory": "2Gi", "cloudsql_instances": ["p:r:db"], "labels": {"team": "a"}},
    )
    address = {"service": "api", "platform": "cloudrun", "project": "p", "region": "r"}
    text = manifest_text("projects/p/locations/r/services/api", address, live)
    assert CANARY not in text
    assert "STRIPE_KEY: not copied" in text and "SD104" in text
    path = tmp_path / "api.yaml"
    path.write_text(text)
    loaded = load_manifest(path, environ={})
    expected = {k: v for k, v in live.env.items() if k != "STRIPE_KEY"}
    assert loaded.desired_spec().env == expected
    assert loaded.image == live.image
    assert loaded.desired_spec().settings == live.settings
