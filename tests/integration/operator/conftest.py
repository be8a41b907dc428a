"""Fixtures for the operator's Kubernetes helpers against the emulated API server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config


@pytest.fixture
def api(apiserver: Any) -> Iterator[client.ApiClient]:
    """The real kubernetes client, configured from the emulator's kubeconfig."""
    api_client = config.new_client_from_config(config_file=str(apiserver.kubeconfig))
    try:
        yield api_client
    finally:
        api_client.close()


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)
