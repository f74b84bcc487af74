"""`safedeploy convert` on `aws apprunner`: options in JSON, in the AWS CLI's shorthand or in a
`file://`, each field carried into the manifest or listed as not converted, never dropped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from clirun import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from safedeploy.convert import ConvertedManifest, convert_script
from safedeploy.lint import lint_manifest
from safedeploy.manifest import load_manifest
from safedeploy.model import SecretRef

SCRIPTS = Path(__file__).parent / "scripts"
CANARY = "sk_live_CANARY0123456789abcdef"
UPDATE = "aws apprunner update-service --service-name api --region us-east-1 "


def one(text: str, base: Path = SCRIPTS) -> ConvertedManifest:
    manifests = convert_script(text, base, "deploy.sh")
    assert len(manifests) == 1, manifests
    return manifests[0]


def data(manifest: ConvertedManifest) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(manifest.yaml)
    return loaded


def test_a_shorthand_script_loses_nothing(tmp_path: Path) -> None:
    converted = one((SCRIPTS / "create-growth.sh").read_text())
    listed = (
        "--source-configuration AutoDeploymentsEnabled=false (line 4)",
        "--network-configuration IngressConfiguration.IsPubliclyAccessible=true (line 4)",
        "--health-check-configuration Protocol=HTTP (line 4)",
        "--health-check-configuration Path=/api/health (line 4)",
        "--health-check-configuration Interval=10 (line 4)",
        "--auto-scaling-configuration-arn=arn:aws:apprunner:eu-west-1:123456789012:"
        "autoscalingconfiguration/growth/1/a1b2 (line 4)",
        "--tags[0].Key=team (line 4)",
        "--tags[0].Value=growth (line 4)",
        "--tags[1].Key=cost-center (line 4)",
        "--tags[1].Value=4412 (line 4)",
    )
    assert converted.not_understood == listed
    header = converted.yaml.split("# Not converted: carry these over by hand, or drop them:\n")[1]
    assert header.startswith("".join(f"#   {item}\n" for item in listed[:5]))
    assert "#   --tags[1].Value=4412 (line 4)\n" in header  # the ARN's line is long, and whole

    path = tmp_path / converted.filename
    path.write_text(converted.yaml)
    manifest = load_manifest(path, variables={"IMAGE_TAG": "v3"}, environ={})
    assert manifest.image == "123456789012.dkr.ecr.eu-west-1.amazonaws.com/growth-api:v3"
    assert manifest.command == ["gunicorn", "app:server", "--workers", "4"]
    assert manifest.env == {"LOG_LEVEL": "info", "PUBLIC_URL": "https://growth.example.com"}
    assert manifest.secrets == {
        "DATABASE_URL": SecretRef(
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:growth/db-AbCdEf"
        )
    }
    assert manifest.desired_spec().settings == {
        "port": 8080,
        "cpu": "2 vCPU",  # Cpu=2048, in the words App Runner describes it with
        "memory": "4 GB",
        "instance_role": "arn:aws:iam::123456789012:role/growth-api",
        "egress": "DEFAULT",
    }
    assert lint_manifest(manifest) == []


@pytest.mark.parametrize(
    ("value", "settings"),
    [
        ('\'Cpu="1 vCPU",Memory="2 GB"\'', {"cpu": "1 vCPU", "memory": "2 GB"}),
        ('"Cpu=0.25 vCPU,Memory=512"', {"cpu": "0.25 vCPU", "memory": "0.5 GB"}),
        ("Cpu=$CPU,Memory=${MEMORY}", {"cpu": "${CPU}", "memory": "${MEMORY}"}),
        (
            "Cpu=1024,InstanceRoleArn=arn:aws:iam::1:role/r",
            {"cpu": "1 vCPU", "instance_role": ("arn:aws:iam::1:role/r")},
        ),
        ('\'{"Cpu": "4096", "Memory": "8192"}\'', {"cpu": "4 vCPU", "memory": "8 GB"}),
        ("'Cpu = 512 ,\n Memory = 1024  '", {"cpu": "0.5 vCPU", "memory": "1 GB"}),
    ],
)
def test_instance_configuration_forms(value: str, settings: dict[str, str]) -> None:
    converted = one(UPDATE + f"--instance-configuration {value}")
    assert data(converted)["settings"] == settings
    assert converted.not_understood == ()


def test_nested_shorthand_for_the_network() -> None:
    converted = one(
        UPDATE + "--network-configuration 'EgressConfiguration={EgressType=VPC,"
        "VpcConnectorArn=arn:aws:apprunner:us-east-1:1:vpcconnector/c/1/a},IpAddressType=IPV4'"
    )
    assert data(converted)["settings"] == {
        "egress": "VPC",
        "vpc_connector": "arn:aws:apprunner:us-east-1:1:vpcconnector/c/1/a",
    }
    assert converted.not_understood == ("--network-configuration IpAddressType=IPV4 (line 1)",)


def test_file_references_are_read_beside_the_script(tmp_path: Path) -> None:
    (tmp_path / "instance.txt").write_text('Cpu="1 vCPU",Memory="2 GB"\n')
    (tmp_path / "start.txt").write_text("node server.js --price $5")
    (tmp_path / "tags.json").write_text('[{"Key": "team", "Value": "growth"}]')
    converted = one(
        UPDATE + "--instance-configuration file://instance.txt "
        "--source-configuration 'ImageRepository={ImageIdentifier=img,"
        "ImageConfiguration={StartCommand@=file://start.txt}}' "
        "--health-check-configuration file://missing.json --tags file://tags.json "
        "--observability-configuration file://$CONFIG_DIR/o.json "
        "--encryption-configuration KmsKey@=fileb://key.bin",
        base=tmp_path,
    )
    assert data(converted)["settings"] == {"cpu": "1 vCPU", "memory": "2 GB"}
    assert data(converted)["command"] == ["node", "server.js", "--price", "$5"]
    assert converted.not_understood == (
        "--health-check-configuration: cannot read missing.json (FileNotFoundError) (line 1)",
        "--tags[0].Key=team (line 1)",
        "--tags[0].Value=growth (line 1)",
        "--observability-configuration: file://$CONFIG_DIR/o.json is only known when the "
        "script runs (line 1)",
        "--encryption-configuration: fileb://key.bin is read as bytes, which a manifest cannot "
        "hold (line 1)",
    )


def test_what_is_not_shorthand_is_listed_with_where_it_stops() -> None:
    converted = one(
        UPDATE + "--instance-configuration Cpu=1024,Cpu=2048 "
        '--network-configuration "$NETWORK" --health-check-configuration \'{"Path": \''
    )
    assert converted.not_understood == (
        "--instance-configuration: not the AWS CLI's shorthand (second instance of key "
        '"Cpu" (often a "," where a space was meant) at character 10) (line 1)',
        "--network-configuration: the value is only known when the script runs (line 1)",
        "--health-check-configuration: not valid JSON (Expecting value at character 10) (line 1)",
    )
    assert "settings" not in data(converted)


def test_every_image_configuration_field_is_carried_or_listed() -> None:
    converted = one(
        UPDATE + '--source-configuration \'{"ImageRepository": {"ImageIdentifier": "img", '
        '"ImageConfiguration": {"Port": "8080", "StartCommand": "npm start", '
        '"RuntimeEnvironmentVariables": {"A": "1", "B": 2}, '
        '"RuntimeEnvironmentSecrets": {"S": "arn:aws:secretsmanager:us-east-1:1:secret:s"}, '
        '"Unknown": {"X": [1, true]}}}, '
        '"CodeRepository": {"RepositoryUrl": "https://github.com/o/r"}}\''
    )
    manifest = data(converted)
    assert (manifest["image"], manifest["command"]) == ("img", ["npm", "start"])
    assert manifest["env"] == {"A": "1"}
    assert manifest["secrets"] == {"S": "arn:aws:secretsmanager:us-east-1:1:secret:s"}
    assert manifest["settings"] == {"port": 8080}
    assert converted.not_understood == (
        "--source-configuration ImageRepository.ImageConfiguration.RuntimeEnvironmentVariables.B=2"
        " (line 1)",
        "--source-configuration ImageRepository.ImageConfiguration.Unknown.X[0]=1 (line 1)",
        "--source-configuration ImageRepository.ImageConfiguration.Unknown.X[1]=true (line 1)",
        "--source-configuration CodeRepository.RepositoryUrl=https://github.com/o/r (line 1)",
    )


def test_credentials_in_shorthand_are_never_copied() -> None:
    converted = one(
        UPDATE + "--source-configuration 'ImageRepository={ImageIdentifier=img,"
        f'ImageConfiguration={{StartCommand="app --api-token {CANARY}",'
        f'RuntimeEnvironmentVariables={{PAYMENTS={CANARY},DSN="host=db password=hunter2",'
        "DB_PASSWORD=$DB_PASSWORD}}}' "
        f"--health-check-configuration Path=/health?key={CANARY} --tags Key=api_token,Value=x"
    )
    everything = converted.yaml + "".join(converted.not_understood)
    assert CANARY not in everything
    assert "hunter2" not in everything
    assert set(data(converted)["secrets"]) == {"PAYMENTS", "DSN", "DB_PASSWORD"}
    assert "command" not in data(converted)  # the live start command stays as it is
    assert converted.not_understood == (
        "--source-configuration ImageRepository.ImageConfiguration.StartCommand=(sensitive) "
        "(line 1)",
        "--health-check-configuration Path=(sensitive) (line 1)",
        "--tags[0].Key=api_token (line 1)",
        "--tags[0].Value=x (line 1)",
    )


def test_the_cli_says_on_stderr_what_it_did_not_convert(tmp_path: Path) -> None:
    done = run_cli("convert", str(SCRIPTS / "create-growth.sh"), "--out-dir", str(tmp_path))
    assert done.code == 0, done.err
    said = done.err.splitlines()
    written = (tmp_path / "growth-api.yaml").read_text()
    for item in one((SCRIPTS / "create-growth.sh").read_text()).not_understood:
        assert f"growth-api: not converted: {item}" in said
        assert f"#   {item.removesuffix(' (line 4)')}" in written  # maybe wrapped before (line 4)


_NAMES = st.from_regex(r"[A-Z][a-z]{1,8}", fullmatch=True)
_TEXTS = st.from_regex(r"[A-Za-z0-9 ./:@-]{0,12}", fullmatch=True)
_TREES = st.recursive(
    _TEXTS,
    lambda inner: (
        st.lists(inner, min_size=1, max_size=3)
        | st.dictionaries(_NAMES, inner, min_size=1, max_size=3)
    ),
    max_leaves=8,
)


def _shorthand(tree: Any) -> str:
    """A tree written in the CLI's shorthand, every string quoted."""
    if isinstance(tree, dict):
        return "{" + ",".join(f"{k}={_shorthand(v)}" for k, v in tree.items()) + "}"
    if isinstance(tree, list):
        return "[" + ",".join(_shorthand(v) for v in tree) + "]"
    return f'"{tree}"'


def _paths(tree: Any, path: str = "") -> list[str]:
    if isinstance(tree, dict):
        return [p for k, v in tree.items() for p in _paths(v, f"{path}.{k}" if path else k)]
    if isinstance(tree, list):
        return [p for i, v in enumerate(tree) for p in _paths(v, f"{path}[{i}]")]
    return [f"{path}={tree}"]


@settings(max_examples=75, deadline=None)
@given(st.dictionaries(_NAMES, _TREES, min_size=1, max_size=4), st.booleans())
def test_every_field_read_is_carried_or_listed(extra: dict[str, Any], as_json: bool) -> None:
    """Whatever App Runner options hold besides what the manifest carries, each field is listed
    by its path, as JSON or as shorthand alike."""
    extra = {k: v for k, v in extra.items() if k not in ("Cpu", "Memory")}
    fields = {"Cpu": "1024", **extra}
    written = json.dumps(fields) if as_json else _shorthand(fields)[1:-1]
    converted = one(UPDATE + f"--instance-configuration '{written}'")
    assert data(converted)["settings"] == {"cpu": "1 vCPU"}
    listed = [item.removesuffix(" (line 1)") for item in converted.not_understood]
    expected = [f"--instance-configuration {path}" for path in _paths(extra)]
    assert len(listed) == len(expected)
    for item, path in zip(listed, expected, strict=True):
        assert item in (path, path.partition("=")[0] + "=(sensitive)")
