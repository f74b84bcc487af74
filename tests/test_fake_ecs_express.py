"""The ECS Express double, driven only through real boto3 and real HTTPS, as a provider would."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from fakes.apprunner import BADPROBE_MARKER
from fakes.ecs_express import BROKEN_MARKER, STAGES, FakeEcsExpress

IMAGE_V1 = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:v1"
IMAGE_V2 = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:v2"
EXECUTION_ROLE = "arn:aws:iam::123456789012:role/ecsTaskExecutionRole"
INFRASTRUCTURE_ROLE = "arn:aws:iam::123456789012:role/ecsInfrastructureRole"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:web/clerk-AbCdEf"
ENV = [{"name": "LOG_LEVEL", "value": "info"}, {"name": "REGION", "value": "eu"}]
INVALID = "InvalidParameterException"
CONTAINER = {
    "image": IMAGE_V1,
    "containerPort": 8080,
    "command": ["gunicorn", "app:app"],
    "environment": ENV,
    "secrets": [{"name": "CLERK_SECRET_KEY", "valueFrom": SECRET_ARN}],
}


@pytest.fixture
def fake() -> Iterator[FakeEcsExpress]:
    with FakeEcsExpress() as double:
        yield double


@pytest.fixture
def client(fake: FakeEcsExpress) -> Any:
    return _client(fake.endpoint)


def _client(endpoint: str | None, **config: Any) -> Any:
    return boto3.client(
        "ecs",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"mode": "standard"}, **config),
    )


def _create(client: Any, name: str = "web", **kwargs: Any) -> str:
    request = {
        "serviceName": name,
        "executionRoleArn": EXECUTION_ROLE,
        "infrastructureRoleArn": INFRASTRUCTURE_ROLE,
        "primaryContainer": CONTAINER,
        **kwargs,
    }
    service = client.create_express_gateway_service(**request)["service"]
    arn: str = service["serviceArn"]
    return arn


def _current(client: Any, arn: str) -> str:
    service = client.describe_express_gateway_service(serviceArn=arn)["service"]
    deployment: str = service["currentDeployment"]
    return deployment


def _deployment(client: Any, deployment_arn: str) -> dict[str, Any]:
    found = client.describe_service_deployments(serviceDeploymentArns=[deployment_arn])
    deployment: dict[str, Any] = found["serviceDeployments"][0]
    return deployment


def _settle(client: Any, deployment_arn: str) -> dict[str, Any]:
    """Poll DescribeServiceDeployments, as the provider will, until the deployment ends."""
    for _ in range(30):
        deployment = _deployment(client, deployment_arn)
        if deployment["status"] in (
            "SUCCESSFUL",
            "STOPPED",
            "ROLLBACK_SUCCESSFUL",
            "ROLLBACK_FAILED",
        ):
            return deployment
    raise AssertionError("the deployment never ended")


def _running(client: Any, name: str = "web", **kwargs: Any) -> str:
    arn = _create(client, name, **kwargs)
    assert _settle(client, _current(client, arn))["status"] == "SUCCESSFUL"
    return arn


def _get(fake: FakeEcsExpress, endpoint: str, path: str = "/") -> requests.Response:
    return requests.get(f"https://{endpoint}{path}", verify=fake.ca_bundle, timeout=10)


def _endpoint(client: Any, arn: str) -> str:
    service = client.describe_express_gateway_service(serviceArn=arn)["service"]
    endpoint: str = service["activeConfigurations"][0]["ingressPaths"][0]["endpoint"]
    return endpoint


def _error(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    code: str = excinfo.value.response["Error"]["Code"]
    return code


def test_create_describes_the_service_with_the_documented_defaults(
    fake: FakeEcsExpress, client: Any
) -> None:
    arn = _create(client, primaryContainer={"image": IMAGE_V1}, tags=[{"key": "o", "value": "sd"}])

    assert arn == "arn:aws:ecs:us-east-1:123456789012:service/default/web"
    service = client.describe_express_gateway_service(serviceArn=arn)["service"]
    assert service["cluster"] == "arn:aws:ecs:us-east-1:123456789012:cluster/default"
    assert service["status"] == {"statusCode": "ACTIVE"}
    assert "tags" not in service
    (config,) = service["activeConfigurations"]
    assert (config["cpu"], config["memory"], config["healthCheckPath"]) == ("256", "512", "/ping")
    assert config["primaryContainer"] == {"image": IMAGE_V1, "containerPort": 80}
    assert config["executionRoleArn"] == EXECUTION_ROLE
    assert re.fullmatch(r"127\.0\.0\.1:\d+", config["ingressPaths"][0]["endpoint"])  # no scheme
    assert re.fullmatch(
        r"arn:aws:ecs:us-east-1:123456789012:service-deployment/default/web/\w+",
        service["currentDeployment"],
    )
    tagged = client.describe_express_gateway_service(serviceArn=arn, include=["TAGS"])["service"]
    assert tagged["tags"] == [{"key": "o", "value": "sd"}]


def test_a_deployment_walks_the_lifecycle_as_it_is_polled(
    fake: FakeEcsExpress, client: Any
) -> None:
    created = client.create_express_gateway_service(
        serviceName="web",
        executionRoleArn=EXECUTION_ROLE,
        infrastructureRoleArn=INFRASTRUCTURE_ROLE,
        primaryContainer=CONTAINER,
    )["service"]
    endpoint = created["activeConfigurations"][0]["ingressPaths"][0]["endpoint"]
    seen, served = [], []
    while not seen or seen[-1][0] == "PENDING" or seen[-1][0] == "IN_PROGRESS":
        deployment = _deployment(client, created["currentDeployment"])
        seen.append((deployment["status"], deployment.get("lifecycleStage")))
        served.append(_get(fake, endpoint).status_code)

    in_progress = [("IN_PROGRESS", stage) for stage in STAGES]
    bake = in_progress.index(("IN_PROGRESS", "BAKE_TIME"))
    in_progress[bake:bake] = [in_progress[bake]] * (fake.bake_polls - 1)
    assert seen == [("PENDING", None), *in_progress, ("SUCCESSFUL", "CLEAN_UP")]
    shifted = seen.index(("IN_PROGRESS", "POST_PRODUCTION_TRAFFIC_SHIFT"))
    assert served == [503] * shifted + [200] * (len(seen) - shifted)
    assert deployment["deploymentCircuitBreaker"]["status"] == "MONITORING_COMPLETE"
    assert deployment["targetServiceRevision"]["requestedProductionTrafficWeight"] == 100.0
    assert deployment["finishedAt"] >= deployment["startedAt"]
    assert _get(fake, endpoint).json() == {
        "image": IMAGE_V1,
        "env": ["LOG_LEVEL", "REGION"],
        "secrets": ["CLERK_SECRET_KEY"],
    }


def test_an_update_with_only_a_new_image_replaces_the_container_whole(
    fake: FakeEcsExpress, client: Any
) -> None:
    """The trap: everything in primaryContainer that the update does not carry is gone."""
    arn = _running(client, cpu="1024", memory="2048", healthCheckPath="/health")

    updated = client.update_express_gateway_service(
        serviceArn=arn, primaryContainer={"image": IMAGE_V2}
    )["service"]

    target = updated["targetConfiguration"]
    assert target["primaryContainer"] == {"image": IMAGE_V2, "containerPort": 80}
    assert (target["cpu"], target["memory"], target["healthCheckPath"]) == (
        "1024",
        "2048",
        "/health",
    )
    assert _settle(client, _current(client, arn))["status"] == "SUCCESSFUL"
    assert _get(fake, _endpoint(client, arn)).json() == {
        "image": IMAGE_V2,
        "env": [],
        "secrets": [],
    }
    serving = fake.serving("web")
    assert serving is not None and serving.env == {} and serving.secrets == {}


def test_an_update_without_primary_container_keeps_the_container(
    fake: FakeEcsExpress, client: Any
) -> None:
    arn = _running(client)
    target = client.update_express_gateway_service(serviceArn=arn, cpu="512")["service"][
        "targetConfiguration"
    ]
    assert target["primaryContainer"] == CONTAINER
    assert target["cpu"] == "512"
    assert target["serviceRevisionArn"].endswith("/00000000000000000002")


def test_the_circuit_breaker_rolls_back_a_broken_image(fake: FakeEcsExpress, client: Any) -> None:
    arn = _running(client)
    before = fake.serving("web")
    broken = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/web:{BROKEN_MARKER}"
    client.update_express_gateway_service(
        serviceArn=arn, primaryContainer={**CONTAINER, "image": broken}
    )

    deployment = _settle(client, _current(client, arn))

    assert deployment["status"] == "ROLLBACK_SUCCESSFUL"
    assert "circuit breaker" in deployment["rollback"]["reason"].lower()
    assert before is not None
    assert deployment["rollback"]["serviceRevisionArn"] == before.arn
    breaker = deployment["deploymentCircuitBreaker"]
    assert breaker["status"] == "TRIGGERED"
    assert breaker["failureCount"] >= breaker["threshold"]
    assert _get(fake, _endpoint(client, arn)).json()["image"] == IMAGE_V1
    (config,) = client.describe_express_gateway_service(serviceArn=arn)["service"][
        "activeConfigurations"
    ]
    assert config["primaryContainer"]["image"] == IMAGE_V1  # the next update builds on v1


def test_a_failed_first_deployment_has_nothing_to_roll_back_to(
    fake: FakeEcsExpress, client: Any
) -> None:
    fake.fail_next_deployment()
    arn = _create(client)
    deployment = _settle(client, _current(client, arn))
    assert deployment["status"] == "ROLLBACK_FAILED"
    assert "serviceRevisionArn" not in deployment["rollback"]
    assert _get(fake, _endpoint(client, arn)).status_code == 503


def test_a_forced_failed_rollback_leaves_nothing_serving(fake: FakeEcsExpress, client: Any) -> None:
    arn = _running(client)
    fake.fail_next_deployment("ROLLBACK_FAILED")
    client.update_express_gateway_service(serviceArn=arn, primaryContainer=CONTAINER)

    deployment = _settle(client, _current(client, arn))

    assert deployment["status"] == "ROLLBACK_FAILED"
    assert deployment["deploymentCircuitBreaker"]["status"] == "TRIGGERED"
    assert _get(fake, _endpoint(client, arn)).status_code == 503
    assert fake.serving("web") is None


def test_stop_service_deployment_rolls_back_while_it_bakes(
    fake: FakeEcsExpress, client: Any
) -> None:
    """ECS's own check (/ping) passes, our probe of /health does not: we roll back in bake."""
    arn = _running(client)
    endpoint = _endpoint(client, arn)
    bad = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/web:{BADPROBE_MARKER}"
    client.update_express_gateway_service(
        serviceArn=arn, primaryContainer={**CONTAINER, "image": bad}
    )
    deployment_arn = _current(client, arn)
    stages = (_deployment(client, deployment_arn).get("lifecycleStage") for _ in range(20))
    assert "BAKE_TIME" in stages  # stops polling there
    assert _get(fake, endpoint, "/health").status_code == 500

    stopped = client.stop_service_deployment(
        serviceDeploymentArn=deployment_arn, stopType="ROLLBACK"
    )

    assert stopped["serviceDeploymentArn"] == deployment_arn
    assert _deployment(client, deployment_arn)["status"] == "ROLLBACK_IN_PROGRESS"
    deployment = _settle(client, deployment_arn)
    assert deployment["status"] == "ROLLBACK_SUCCESSFUL"
    assert deployment["rollback"]["reason"] == "Stopped by StopServiceDeployment."
    assert _get(fake, endpoint, "/health").status_code == 200
    with pytest.raises(ClientError) as again:
        client.stop_service_deployment(serviceDeploymentArn=deployment_arn, stopType="ROLLBACK")
    assert _error(again) == "ConflictException"
    with pytest.raises(ClientError) as abort:
        client.stop_service_deployment(serviceDeploymentArn=deployment_arn, stopType="ABORT")
    assert _error(abort) == "InvalidParameterException"


def test_a_newer_update_supersedes_a_running_deployment(client: Any) -> None:
    arn = _running(client)
    client.update_express_gateway_service(serviceArn=arn, cpu="512")
    client.update_express_gateway_service(serviceArn=arn, cpu="1024")

    listed = client.list_service_deployments(service="web", maxResults=10)["serviceDeployments"]

    assert [d["status"] for d in listed] == ["PENDING", "STOPPED", "SUCCESSFUL"]
    assert "Superseded" in listed[1]["statusReason"]
    stopped = client.list_service_deployments(service=arn, status=["STOPPED"])["serviceDeployments"]
    assert [d["serviceDeploymentArn"] for d in stopped] == [listed[1]["serviceDeploymentArn"]]


def test_describe_and_update_answer_a_missing_service_with_different_codes(client: Any) -> None:
    missing = "arn:aws:ecs:us-east-1:123456789012:service/default/nope"
    deployment = "arn:aws:ecs:us-east-1:123456789012:service-deployment/default/nope/x"
    calls = {
        "ResourceNotFoundException": lambda: client.describe_express_gateway_service(
            serviceArn=missing
        ),
        "ServiceNotFoundException": lambda: client.update_express_gateway_service(
            serviceArn=missing, cpu="512"
        ),
        "ServiceDeploymentNotFoundException": lambda: client.stop_service_deployment(
            serviceDeploymentArn=deployment
        ),
        "ClusterNotFoundException": lambda: client.list_services(cluster="nope"),
    }
    for code, call in calls.items():
        with pytest.raises(ClientError) as excinfo:
            call()
        assert _error(excinfo) == code
    for call in (
        lambda: client.delete_express_gateway_service(serviceArn=missing),
        lambda: client.list_service_deployments(service="nope"),
    ):
        with pytest.raises(ClientError) as excinfo:
            call()
        assert _error(excinfo) == "ServiceNotFoundException"
    described = client.describe_service_deployments(serviceDeploymentArns=[deployment])
    assert described["failures"] == [{"arn": deployment, "reason": "MISSING"}]


def test_bad_requests_are_refused_with_the_models_codes(client: Any) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"executionRoleArn": "ecsTaskExecutionRole"}, "ClientException"),
        ({"healthCheckPath": "health"}, "InvalidParameterException"),
        ({"cpuArchitecture": "RISCV"}, "InvalidParameterException"),  # enum, checked server-side
        ({"tags": [{"key": "a#b", "value": "v"}]}, "InvalidParameterException"),  # model pattern
        ({"primaryContainer": {"image": IMAGE_V1, "environment": [{"name": "A"}]}}, INVALID),
        ({"primaryContainer": {**CONTAINER, "environment": [*ENV, *ENV]}}, INVALID),
    ]
    for extra, code in cases:
        with pytest.raises(ClientError) as excinfo:
            _create(client, **extra)
        assert _error(excinfo) == code, extra
    with pytest.raises(ClientError) as no_role:
        client.create_express_gateway_service(
            infrastructureRoleArn=INFRASTRUCTURE_ROLE, primaryContainer=CONTAINER
        )
    assert _error(no_role) == "InvalidParameterException"
    _create(client)
    with pytest.raises(ClientError) as twice:
        _create(client)
    assert "not idempotent" in twice.value.response["Error"]["Message"]


def test_unsigned_requests_are_refused(fake: FakeEcsExpress) -> None:
    unsigned = _client(fake.endpoint, signature_version=UNSIGNED)
    with pytest.raises(ClientError) as excinfo:
        unsigned.list_services()
    assert _error(excinfo) == "MissingAuthenticationTokenException"


def test_throttling_and_server_errors_are_retried_by_botocore(
    fake: FakeEcsExpress, client: Any
) -> None:
    arn = _create(client)
    fake.throttle_next("DescribeExpressGatewayService")
    fake.fail_next("DescribeExpressGatewayService")

    assert client.describe_express_gateway_service(serviceArn=arn)["service"]["serviceArn"] == arn

    statuses = [c.status for c in fake.calls("DescribeExpressGatewayService")]
    assert statuses == [400, 500, 200]


def test_list_services_finds_services_by_cluster_across_pages(client: Any) -> None:
    names = ["a", "b", "c"]
    for name in names:
        _create(client, name)
    _create(client, "d", cluster="other")

    pages = client.get_paginator("list_services").paginate(cluster="default")
    arns = [arn for page in pages for arn in page["serviceArns"]]

    assert arns == [f"arn:aws:ecs:us-east-1:123456789012:service/default/{n}" for n in names]
    assert client.list_services(cluster="other")["serviceArns"] == [
        "arn:aws:ecs:us-east-1:123456789012:service/other/d"
    ]


def test_delete_drains_the_service_and_stops_serving(fake: FakeEcsExpress, client: Any) -> None:
    arn = _running(client)
    endpoint = _endpoint(client, arn)

    deleted = client.delete_express_gateway_service(serviceArn=arn)["service"]

    assert deleted["status"]["statusCode"] == "DRAINING"
    assert _get(fake, endpoint).status_code == 503
    service = client.describe_express_gateway_service(serviceArn=arn)["service"]
    assert service["status"]["statusCode"] == "INACTIVE"
    with pytest.raises(ClientError) as excinfo:
        client.update_express_gateway_service(serviceArn=arn, cpu="512")
    assert _error(excinfo) == "ServiceNotActiveException"
    assert client.list_services()["serviceArns"] == []


def test_the_endpoint_variable_reaches_the_double_and_every_call_is_recorded(
    fake: FakeEcsExpress, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECS", fake.endpoint)
    client = _client(None)
    arn = _create(client)
    client.update_express_gateway_service(serviceArn=arn, primaryContainer={"image": IMAGE_V2})

    assert [c.operation for c in fake.calls()] == [
        "CreateExpressGatewayService",
        "UpdateExpressGatewayService",
    ]
    update = fake.mutating_calls()[1]
    assert update.body == {"serviceArn": arn, "primaryContainer": {"image": IMAGE_V2}}
    assert update.status == 200
