"""Cloud Run: the provider (`provider`), the SDK wiring (`client`), the mapping of a Service to
the neutral model (`mapping`), preflight facts (`preflight`) and ID-token probes (`auth`)."""

from safedeploy.providers.cloudrun.auth import IdTokenProbe
from safedeploy.providers.cloudrun.client import Pace
from safedeploy.providers.cloudrun.mapping import owned_names
from safedeploy.providers.cloudrun.provider import CloudRunProvider

__all__ = ["CloudRunProvider", "IdTokenProbe", "Pace", "owned_names"]
