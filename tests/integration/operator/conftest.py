"""Fixtures for the operator's Kubernetes helpers against the emulated API server."""

from __future__ import annotations

import pytest
from kubernetes import client


@pytest.fixture
def api(kube_api: client.ApiClient) -> client.ApiClient:
    """The real kubernetes client, configured from the emulator's kubeconfig."""
    return kube_api


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)
