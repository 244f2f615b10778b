"""The tuner service: ``autotune server`` (an HTTP API over the Scheduler) and its clients."""

from autotune.service._app import check_admin_token, create_app
from autotune.service._client import AdminClient, HttpClient, ServiceError
from autotune.service._models import ExperimentOut, TrialOut

__all__ = [
    "AdminClient",
    "ExperimentOut",
    "HttpClient",
    "ServiceError",
    "TrialOut",
    "check_admin_token",
    "create_app",
]
