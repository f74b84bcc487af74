"""Amazon ECS Express Mode: the provider, and what context needs of it."""

from safedeploy.providers.ecs_express.client import OPERATION_TIMEOUT, POLL_INTERVAL
from safedeploy.providers.ecs_express.provider import Described, EcsExpressProvider, describe

__all__ = ["OPERATION_TIMEOUT", "POLL_INTERVAL", "Described", "EcsExpressProvider", "describe"]
