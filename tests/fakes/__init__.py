"""Stateful loopback test doubles of the platform APIs that safedeploy drives."""
