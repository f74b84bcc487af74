"""The App Runner double, driven only through real boto3 and real HTTPS, as the provider will be."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from fakes.apprunner import AppRequest, AppResponse, FakeAppRunner, ServiceConfig

IMAGE_V1 = "public.ecr.aws/acme/backend-api:v1"
IMAGE_V2 = "public.ecr.aws/acme/backend-api:v2"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:clerk-key-AbCdEf"


@pytest.fixture
def fake() -> Iterator[FakeAppRunner]:
    with FakeAppRunner() as double:
        yield double


@pytest.fixture
def client(fake: FakeAppRunner) -> Any:
    return _client(fake)


@pytest.fixture
def trust_fake_ca(fake: FakeAppRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """Verify HTTPS against the double's CA, the way CI would point requests at it."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", fake.ca_bundle)


def _client(fake: FakeAppRunner, region: str = "us-east-1") -> Any:
    return boto3.client(
        "apprunner",
        region_name=region,
        endpoint_url=fake.endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"mode": "standard"}),
    )


def _source(
    image: str = IMAGE_V1, env: dict[str, str] | None = None, secrets: dict[str, str] | None = None
) -> dict[str, Any]:
    image_configuration: dict[str, Any] = {}
    if env is not None:
        image_configuration["RuntimeEnvironmentVariables"] = env
    if secrets is not None:
        image_configuration["RuntimeEnvironmentSecrets"] = secrets
    repository: dict[str, Any] = {"ImageIdentifier": image, "ImageRepositoryType": "ECR_PUBLIC"}
    if image_configuration:
        repository["ImageConfiguration"] = image_configuration
    return {"ImageRepository": repository}


def _settle(client: Any, arn: str) -> dict[str, Any]:
    """Poll DescribeService, as the provider will, until no operation is in progress."""
    for _ in range(10):
        service: dict[str, Any] = client.describe_service(ServiceArn=arn)["Service"]
        if service["Status"] != "OPERATION_IN_PROGRESS":
            return service
    raise AssertionError("the operation never ended")


def _create_running(client: Any, name: str = "backend-api", **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("SourceConfiguration", _source())
    arn = client.create_service(ServiceName=name, **kwargs)["Service"]["ServiceArn"]
    return _settle(client, arn)


def _serving(fake: FakeAppRunner) -> ServiceConfig:
    """The configuration backend-api's URL serves; failing if nothing does."""
    active = fake.active_config("backend-api")
    assert active is not None
    return active


def _latest_operation(client: Any, arn: str) -> dict[str, Any]:
    operation: dict[str, Any] = client.list_operations(ServiceArn=arn)["OperationSummaryList"][0]
    return operation


def _error(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    response = excinfo.value.response
    return (
        response["Error"]["Code"],
        response["Error"]["Message"],
        response["ResponseMetadata"]["HTTPStatusCode"],
    )


def test_create_is_an_operation_that_takes_polls(fake: FakeAppRunner, client: Any) -> None:
    created = client.create_service(
        ServiceName="backend-api",
        SourceConfiguration=_source(env={"A": "1"}),
        InstanceConfiguration={"Cpu": "1 vCPU", "Memory": "2 GB"},
        Tags=[{"Key": "owner", "Value": "safedeploy"}],
    )
    service, operation_id = created["Service"], created["OperationId"]
    arn = service["ServiceArn"]

    assert re.fullmatch(
        r"arn:aws:apprunner:us-east-1:123456789012:service/backend-api/[0-9a-f]{32}", arn
    )
    assert arn.endswith("/" + service["ServiceId"])
    assert re.fullmatch(r"127\.0\.0\.1:\d+", service["ServiceUrl"])  # no scheme, like the real one
    assert service["Status"] == "OPERATION_IN_PROGRESS"
    assert service["InstanceConfiguration"] == {"Cpu": "1024", "Memory": "2048"}
    assert service["SourceConfiguration"]["ImageRepository"]["ImageConfiguration"] == {
        "RuntimeEnvironmentVariables": {"A": "1"},
        "Port": "8080",
    }
    assert service["HealthCheckConfiguration"]["Protocol"] == "TCP"
    assert service["AutoScalingConfigurationSummary"]["AutoScalingConfigurationName"] == (
        "DefaultConfiguration"
    )
    assert fake.active_config("backend-api") is None

    statuses = [client.describe_service(ServiceArn=arn)["Service"]["Status"] for _ in range(3)]
    assert statuses == ["OPERATION_IN_PROGRESS", "OPERATION_IN_PROGRESS", "RUNNING"]
    operation = _latest_operation(client, arn)
    assert (operation["Id"], operation["Type"], operation["Status"]) == (
        operation_id,
        "CREATE_SERVICE",
        "SUCCEEDED",
    )
    assert operation["TargetArn"] == arn
    assert operation["StartedAt"] <= operation["EndedAt"]
    assert client.list_tags_for_resource(ResourceArn=arn)["Tags"] == [
        {"Key": "owner", "Value": "safedeploy"}
    ]
    assert [c.operation for c in fake.mutating_calls()] == ["CreateService"]


def test_endpoint_comes_from_aws_endpoint_url_apprunner(
    fake: FakeAppRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_APPRUNNER", fake.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)

    client = boto3.session.Session().client("apprunner")

    assert client.list_services()["ServiceSummaryList"] == []
    assert [c.operation for c in fake.calls()] == ["ListServices"]


def test_list_services_pages_through_next_token(fake: FakeAppRunner, client: Any) -> None:
    fake.operation_polls = 0
    names = [f"service-{i}" for i in range(5)]
    for name in names:
        client.create_service(ServiceName=name, SourceConfiguration=_source())

    pages, token = [], None
    while True:
        page = client.list_services(**({"NextToken": token} if token else {}))
        pages.append([s["ServiceName"] for s in page["ServiceSummaryList"]])
        token = page.get("NextToken")
        if token is None:
            break

    assert pages == [names[0:2], names[2:4], names[4:]]  # small default pages
    everything = client.list_services(MaxResults=20)
    assert "NextToken" not in everything
    assert len(everything["ServiceSummaryList"]) == 5
    with pytest.raises(client.exceptions.InvalidRequestException):
        client.list_services(MaxResults=21)
    with pytest.raises(client.exceptions.InvalidRequestException):
        client.list_services(NextToken="not-a-token")


def test_update_changes_only_the_blocks_it_carries(fake: FakeAppRunner, client: Any) -> None:
    arn = _create_running(
        client,
        SourceConfiguration=_source(env={"A": "1", "B": "2"}),
        InstanceConfiguration={"Cpu": "2 vCPU", "Memory": "4 GB"},
    )["ServiceArn"]

    updated = client.update_service(
        ServiceArn=arn, SourceConfiguration=_source(env={"A": "1", "B": "3"})
    )["Service"]
    assert updated["Status"] == "OPERATION_IN_PROGRESS"
    assert _serving(fake).env == {"A": "1", "B": "2"}  # still the old one
    service = _settle(client, arn)

    assert service["InstanceConfiguration"] == {"Cpu": "2048", "Memory": "4096"}
    assert _serving(fake).env == {"A": "1", "B": "3"}
    client.update_service(ServiceArn=arn, InstanceConfiguration={"Cpu": "1 vCPU"})
    service = _settle(client, arn)
    assert service["InstanceConfiguration"] == {"Cpu": "1024", "Memory": "4096"}
    assert _serving(fake).env == {"A": "1", "B": "3"}


def test_image_repository_replaces_image_configuration_wholesale(
    fake: FakeAppRunner, client: Any
) -> None:
    """The trap safedeploy exists for: an image without ImageConfiguration drops every variable."""
    arn = _create_running(
        client,
        SourceConfiguration=_source(env={"REDIS_HOST": "10.0.0.1"}, secrets={"CLERK": SECRET_ARN}),
    )["ServiceArn"]

    client.update_service(ServiceArn=arn, SourceConfiguration=_source(IMAGE_V2))
    service = _settle(client, arn)

    assert service["SourceConfiguration"]["ImageRepository"]["ImageConfiguration"] == {
        "Port": "8080"
    }
    active = _serving(fake)
    assert (active.image, active.env, active.secrets) == (IMAGE_V2, {}, {})
    assert [c.operation for c in fake.mutating_calls()] == ["CreateService", "UpdateService"]
    assert fake.calls("UpdateService")[0].body["SourceConfiguration"] == _source(IMAGE_V2)


def test_update_during_an_operation_is_invalid_state(fake: FakeAppRunner, client: Any) -> None:
    arn = _create_running(client)["ServiceArn"]
    client.update_service(ServiceArn=arn, SourceConfiguration=_source(IMAGE_V2))

    with pytest.raises(client.exceptions.InvalidStateException) as excinfo:
        client.update_service(ServiceArn=arn, SourceConfiguration=_source(IMAGE_V1))

    assert _error(excinfo) == (
        "InvalidStateException",
        "Service cannot be updated in the current state: OPERATION_IN_PROGRESS.",
        400,
    )
    _settle(client, arn)
    client.update_service(ServiceArn=arn, SourceConfiguration=_source(IMAGE_V1))


def test_another_writer_can_hold_an_operation_open(fake: FakeAppRunner, client: Any) -> None:
    arn = _create_running(client)["ServiceArn"]

    operation_id = fake.external_update("backend-api", polls=5)

    for _ in range(5):
        assert client.describe_service(ServiceArn=arn)["Service"]["Status"] == (
            "OPERATION_IN_PROGRESS"
        )
    with pytest.raises(client.exceptions.InvalidStateException):
        client.update_service(ServiceArn=arn, SourceConfiguration=_source(IMAGE_V2))
    operation = _latest_operation(client, arn)
    assert (operation["Id"], operation["Type"]) == (operation_id, "START_DEPLOYMENT")
    assert operation["Status"] == "SUCCEEDED"
    assert [c.operation for c in fake.mutating_calls()] == ["CreateService", "UpdateService"]


def test_console_edit_by_another_writer_shows_as_drift(fake: FakeAppRunner, client: Any) -> None:
    arn = _create_running(client, SourceConfiguration=_source(env={"A": "1"}))["ServiceArn"]

    fake.external_update("backend-api", {"SourceConfiguration": _source(env={"A": "2"})})
    service = _settle(client, arn)

    image_configuration = service["SourceConfiguration"]["ImageRepository"]["ImageConfiguration"]
    assert image_configuration["RuntimeEnvironmentVariables"] == {"A": "2"}
    assert _latest_operation(client, arn)["Type"] == "UPDATE_SERVICE"


@pytest.mark.usefixtures("trust_fake_ca")
def test_unhealthy_image_is_rolled_back_by_app_runner(fake: FakeAppRunner, client: Any) -> None:
    service = _create_running(client, SourceConfiguration=_source(env={"A": "1"}))
    arn, url = service["ServiceArn"], "https://" + service["ServiceUrl"]

    client.update_service(
        ServiceArn=arn, SourceConfiguration=_source("public.ecr.aws/acme/api:unhealthy")
    )
    service = _settle(client, arn)

    assert service["Status"] == "RUNNING"
    assert service["SourceConfiguration"]["ImageRepository"]["ImageIdentifier"] == IMAGE_V1
    operations = client.list_operations(ServiceArn=arn)["OperationSummaryList"]
    assert [(o["Type"], o["Status"]) for o in operations] == [
        ("UPDATE_SERVICE", "ROLLBACK_SUCCEEDED"),
        ("CREATE_SERVICE", "SUCCEEDED"),
    ]
    assert _serving(fake).env == {"A": "1"}
    assert requests.get(url + "/", timeout=5).json()["image"] == IMAGE_V1


@pytest.mark.usefixtures("trust_fake_ca")
def test_service_url_serves_the_active_configuration_over_https(
    fake: FakeAppRunner, client: Any
) -> None:
    service = _create_running(client)
    url = "https://" + service["ServiceUrl"]

    health = requests.get(url + "/health", timeout=5)
    assert (health.status_code, health.json()) == (200, {"ok": True})
    client.update_service(ServiceArn=service["ServiceArn"], SourceConfiguration=_source(IMAGE_V2))
    assert requests.get(url + "/", timeout=5).json()["image"] == IMAGE_V1  # old until it ends
    _settle(client, service["ServiceArn"])
    assert requests.get(url + "/", timeout=5).json()["image"] == IMAGE_V2


def test_service_url_certificate_is_not_publicly_trusted(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    service = _create_running(client)

    with pytest.raises(requests.exceptions.SSLError):
        requests.get("https://" + service["ServiceUrl"] + "/health", timeout=5)


@pytest.mark.usefixtures("trust_fake_ca")
def test_badprobe_image_succeeds_but_its_health_answers_500(
    fake: FakeAppRunner, client: Any
) -> None:
    service = _create_running(client)
    badprobe = "public.ecr.aws/acme/backend-api:v2-badprobe"

    client.update_service(ServiceArn=service["ServiceArn"], SourceConfiguration=_source(badprobe))
    _settle(client, service["ServiceArn"])

    assert _latest_operation(client, service["ServiceArn"])["Status"] == "SUCCEEDED"
    assert _serving(fake).image == badprobe
    response = requests.get("https://" + service["ServiceUrl"] + "/health", timeout=5)
    assert response.status_code == 500


def test_http_health_check_catches_what_tcp_does_not(client: Any) -> None:
    arn = _create_running(client, HealthCheckConfiguration={"Protocol": "HTTP", "Path": "/health"})[
        "ServiceArn"
    ]

    client.update_service(
        ServiceArn=arn, SourceConfiguration=_source("public.ecr.aws/acme/api:badprobe")
    )
    _settle(client, arn)

    assert _latest_operation(client, arn)["Status"] == "ROLLBACK_SUCCEEDED"


@pytest.mark.usefixtures("trust_fake_ca")
def test_registered_app_answers_and_decides_whether_it_starts(
    fake: FakeAppRunner, client: Any
) -> None:
    def app(request: AppRequest) -> AppResponse:
        if "CLERK_SECRET_KEY" not in request.config.secrets:
            return AppResponse(500, "auth is not configured")
        return AppResponse(200, {"path": request.path, "query": request.query})

    fake.register_app(IMAGE_V2, app, starts=lambda config: "DATABASE_URL" in config.env)
    service = _create_running(client)
    arn, url = service["ServiceArn"], "https://" + service["ServiceUrl"]

    client.update_service(ServiceArn=arn, SourceConfiguration=_source(IMAGE_V2))
    _settle(client, arn)
    assert _latest_operation(client, arn)["Status"] == "ROLLBACK_SUCCEEDED"

    client.update_service(
        ServiceArn=arn, SourceConfiguration=_source(IMAGE_V2, env={"DATABASE_URL": "postgres://"})
    )
    _settle(client, arn)
    assert _latest_operation(client, arn)["Status"] == "SUCCEEDED"
    assert requests.get(url + "/me", timeout=5).status_code == 500

    client.update_service(
        ServiceArn=arn,
        SourceConfiguration=_source(
            IMAGE_V2, env={"DATABASE_URL": "postgres://"}, secrets={"CLERK_SECRET_KEY": SECRET_ARN}
        ),
    )
    _settle(client, arn)
    assert requests.get(url + "/me?x=1", timeout=5).json() == {"path": "/me", "query": "x=1"}


@pytest.mark.usefixtures("trust_fake_ca")
def test_rollback_failed_leaves_nothing_serving(fake: FakeAppRunner, client: Any) -> None:
    service = _create_running(client)
    fake.fail_next_deployment("ROLLBACK_FAILED")

    client.update_service(ServiceArn=service["ServiceArn"], SourceConfiguration=_source(IMAGE_V2))
    _settle(client, service["ServiceArn"])

    assert _latest_operation(client, service["ServiceArn"])["Status"] == "ROLLBACK_FAILED"
    assert fake.active_config("backend-api") is None
    response = requests.get("https://" + service["ServiceUrl"] + "/health", timeout=5)
    assert response.status_code == 503


def test_failed_creation_is_create_failed_and_update_repairs_it(client: Any) -> None:
    service = _create_running(client, SourceConfiguration=_source("public.ecr.aws/a/b:unhealthy"))

    assert service["Status"] == "CREATE_FAILED"
    assert _latest_operation(client, service["ServiceArn"])["Status"] == "FAILED"
    client.update_service(ServiceArn=service["ServiceArn"], SourceConfiguration=_source(IMAGE_V2))
    assert _settle(client, service["ServiceArn"])["Status"] == "RUNNING"


def test_throttling_is_retried_by_botocore(fake: FakeAppRunner, client: Any) -> None:
    fake.throttle_next("ListServices")
    fake.throttle_next("ListOperations", status=429)
    arn = _create_running(client)["ServiceArn"]

    assert client.list_services()["ServiceSummaryList"][0]["ServiceArn"] == arn
    assert _latest_operation(client, arn)["Status"] == "SUCCEEDED"
    assert [c.status for c in fake.calls("ListServices")] == [400, 200]
    assert [c.status for c in fake.calls("ListOperations")] == [429, 200]


def test_injected_errors_reach_the_caller_as_typed_exceptions(
    fake: FakeAppRunner, client: Any
) -> None:
    fake.fail_next("CreateService", "ServiceQuotaExceededException")
    with pytest.raises(client.exceptions.ServiceQuotaExceededException):
        client.create_service(ServiceName="backend-api", SourceConfiguration=_source())

    fake.fail_next("DescribeService", times=3)  # 500s: botocore retries, then gives up
    with pytest.raises(client.exceptions.InternalServiceErrorException):
        client.describe_service(ServiceArn="arn:aws:apprunner:us-east-1:123456789012:service/x/y")
    assert [c.status for c in fake.calls("DescribeService")] == [500, 500, 500]


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        pytest.param(
            {"ServiceName": "bad name!", "SourceConfiguration": _source()},
            "must match the pattern",
            id="service-name",
        ),
        pytest.param(
            {"ServiceName": "backend-api", "SourceConfiguration": _source("nginx:latest")},
            "ImageIdentifier must match the pattern",
            id="image-outside-ecr",
        ),
        pytest.param(
            {
                "ServiceName": "backend-api",
                "SourceConfiguration": {
                    "ImageRepository": {
                        "ImageIdentifier": "123456789012.dkr.ecr.us-east-1.amazonaws.com/api:v1",
                        "ImageRepositoryType": "ECR",
                    }
                },
            },
            "AccessRoleArn is required",
            id="private-ecr-without-role",
        ),
        pytest.param(
            {
                "ServiceName": "backend-api",
                "SourceConfiguration": _source(),
                "NetworkConfiguration": {"EgressConfiguration": {"EgressType": "VPC"}},
            },
            "VpcConnectorArn is required",
            id="vpc-without-connector",
        ),
        pytest.param(
            {
                "ServiceName": "backend-api",
                "SourceConfiguration": _source(),
                "HealthCheckConfiguration": {"Interval": 21},
            },
            "between 1 and 20",
            id="health-check-range",
        ),
    ],
)
def test_invalid_requests_are_refused(client: Any, request_: dict[str, Any], error: str) -> None:
    with pytest.raises(client.exceptions.InvalidRequestException) as excinfo:
        client.create_service(**request_)

    assert error in _error(excinfo)[1]
    assert client.list_services()["ServiceSummaryList"] == []


def test_unknown_service_and_wrong_region(fake: FakeAppRunner, client: Any) -> None:
    missing = "arn:aws:apprunner:us-east-1:123456789012:service/nope/0123456789abcdef"
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_service(ServiceArn=missing)

    with pytest.raises(ClientError) as excinfo:
        _client(fake, region="eu-west-1").list_services()
    assert _error(excinfo)[0::2] == ("InvalidSignatureException", 403)


def test_close_stops_every_server_and_thread() -> None:
    before = set(threading.enumerate())
    fake = FakeAppRunner(operation_polls=0)
    service = _create_running(_client(fake))
    url = "https://" + service["ServiceUrl"] + "/health"
    assert requests.get(url, verify=fake.ca_bundle, timeout=5).status_code == 200

    fake.close()

    assert set(threading.enumerate()) == before
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url, verify=False, timeout=5)
