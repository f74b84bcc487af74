"""safedeploy: merge-safe deploys for Cloud Run and App Runner.

The pipeline, one module per step: manifest -> merge -> plan (with lint) -> render;
deployer (apply -> wait -> probe -> promote -> record, rollback on failure) over a provider.
"""

__version__ = "0.1.0"
