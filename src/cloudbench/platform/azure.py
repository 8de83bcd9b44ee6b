"""Azure settings and the Resource Manager client, shared by the master and nuke."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.mgmt.resource.resources import ResourceManagementClient

NO_CREDENTIALS = (
    "no usable Azure credentials: log in with `az login`, or set "
    "AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, then retry"
)


class AzureSettings(BaseSettings):
    """CLOUDBENCH_AZURE_* from the environment (or ``<home>/azure.env``)."""

    model_config = SettingsConfigDict(env_prefix="CLOUDBENCH_AZURE_", extra="ignore")

    subscription_id: str = ""
    location: str = ""
    # Another cloud (sovereign clouds, or a stand-in) by its Resource Manager endpoint.
    arm_endpoint: str = "https://management.azure.com"
    ssh_public_key: str = ""
    ssh_cidr: str = ""
    # How long a sweep waits for one group's deletion before reporting it as left.
    delete_timeout: float = 1800.0

    def scope(self) -> str:
        return self.arm_endpoint.rstrip("/") + "/.default"


class AzureUnavailable(RuntimeError):
    """Azure cannot be asked at all (no credentials, no subscription); one line for the user."""


def make_client(
    settings: AzureSettings, credential: TokenCredential | None = None
) -> ResourceManagementClient:
    """A Resource Manager client for the configured subscription and endpoint."""
    from azure.identity import DefaultAzureCredential
    from azure.mgmt.resource.resources import ResourceManagementClient

    if not settings.subscription_id.strip():
        raise AzureUnavailable(
            "no Azure subscription: set CLOUDBENCH_AZURE_SUBSCRIPTION_ID (az account show)"
        )
    # The SDK logs every request at INFO and each failed credential at WARNING; what
    # matters reaches the user as one line from us.
    logging.getLogger("azure").setLevel(logging.ERROR)
    # Not interactive: a sweep must never wait for a browser login.
    credential = credential or DefaultAzureCredential(exclude_interactive_browser_credential=True)
    return ResourceManagementClient(
        credential,
        settings.subscription_id,
        base_url=settings.arm_endpoint,
        credential_scopes=[settings.scope()],
        retry_total=6,
        retry_backoff_factor=1.0,
    )


def load_settings() -> AzureSettings:
    from cloudbench.platform.state import cloudbench_home

    return AzureSettings(_env_file=cloudbench_home() / "azure.env")
