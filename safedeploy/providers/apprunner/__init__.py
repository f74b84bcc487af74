"""AWS App Runner: the provider, and what context and import need of it."""

from safedeploy.providers.apprunner.client import OPERATION_TIMEOUT, POLL_INTERVAL
from safedeploy.providers.apprunner.mapping import service_url
from safedeploy.providers.apprunner.provider import AppRunnerProvider, describe
from safedeploy.providers.records import Revisions

__all__ = [
    "OPERATION_TIMEOUT",
    "POLL_INTERVAL",
    "AppRunnerProvider",
    "Revisions",
    "describe",
    "service_url",
]
