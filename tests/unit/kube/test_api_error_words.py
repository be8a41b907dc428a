"""What an API refusal turns into on a GPURepair: the server's own sentence, bounded, never the raw response."""

from __future__ import annotations

import json

from kubernetes.client.rest import ApiException

from repairbot.kube.client import API_ERROR_MAX, describe_api_error, describe_error
from repairbot.kube.drain import DrainFailed, DrainProgress

FORBIDDEN = (
    'pods "llama-0" is forbidden: User "system:serviceaccount:repairbot:repairbot-operator" '
    'cannot create resource "pods/eviction" in API group "" in the namespace "train"'
)


def refusal(message: str, status: int = 403, reason: str = "Forbidden") -> ApiException:
    error = ApiException(status=status, reason=reason)
    error.body = json.dumps({"kind": "Status", "status": "Failure", "message": message, "reason": reason,
                             "code": status}).encode()  # fmt: skip
    error.headers = {"Audit-Id": "0c6c2b0e", "Content-Type": "application/json"}
    return error


def test_an_rbac_refusal_reads_as_the_servers_sentence_without_headers() -> None:
    assert describe_api_error(refusal(FORBIDDEN)) == f"403 Forbidden: {FORBIDDEN}"
    assert describe_error(refusal(FORBIDDEN)) == f"API server answered 403 Forbidden: {FORBIDDEN}"
    assert "Audit-Id" not in describe_error(refusal(FORBIDDEN))


def test_a_huge_status_message_is_cut() -> None:
    described = describe_api_error(refusal("x" * 10_000, 500, "InternalError"))
    assert described.startswith("500 InternalError: xxx") and len(described) <= API_ERROR_MAX + 30


def test_a_body_that_is_no_status_is_shown_as_it_came() -> None:
    error = ApiException(status=502, reason="Bad Gateway")
    error.body = b"<html>upstream down</html>"
    assert describe_api_error(error) == "502 Bad Gateway: <html>upstream down</html>"


def test_a_drain_pass_with_refusals_names_the_first_in_full_and_counts_the_rest() -> None:
    errors = [f"train/llama-{i}: eviction refused: 403 Forbidden: {FORBIDDEN}" for i in range(40)]
    failed = DrainFailed.of("gpu-node-007", DrainProgress(pods_left=40, errors=errors))
    assert failed is not None
    text = str(failed)
    assert text.startswith(f"node gpu-node-007: drain stopped: {errors[0]} (and 39 more: train/llama-1, ")
    assert text.endswith("and 36 more)") and len(text) < 1000
    assert DrainFailed.of("gpu-node-007", DrainProgress(pods_left=2)) is None
