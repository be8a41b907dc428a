"""What Slack sends an app when someone clicks one of its buttons: a signed ``block_actions`` request.

Slack POSTs the app's Request URL with ``application/x-www-form-urlencoded``
body ``payload=<JSON>``, signed with the app's signing secret:
``X-Slack-Signature: v0=hex(HMAC-SHA256(secret, "v0:{timestamp}:{raw body}"))``
beside ``X-Slack-Request-Timestamp``. A request it had no 200 for within
3 seconds is retried with ``X-Slack-Retry-Num`` and ``X-Slack-Retry-Reason``.
The payload (interaction payloads reference, ``block_actions``) names the
user, the container message, the channel, a ``response_url`` for answering
(ephemerally or not) and the clicked ``actions`` with their ``action_id``,
``block_id``, ``value`` and ``action_ts``.

The fake builds exactly that from a message it holds, so a test or the demo
clicks a button RepairBot really posted; the ``response_url`` points back at
the fake, which records each answer (:attr:`SlackSim.responses`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    """``v0=`` and the hex HMAC-SHA256 of ``v0:{timestamp}:{body}`` under the signing secret."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def block_actions_payload(
    *,
    user: str,
    user_name: str,
    channel: str,
    message_ts: str,
    message: dict[str, Any],
    button: dict[str, Any],
    response_url: str,
    team: str = "T0SIM",
) -> dict[str, Any]:
    """The ``block_actions`` payload of one click on ``button`` of ``message`` (Slack's documented shape)."""
    now = f"{time.time():.6f}"
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user_name, "name": user_name, "team_id": team},
        "api_app_id": "A0REPAIRBOT",
        "token": "deprecated-verification-token",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False},
        "trigger_id": f"{int(time.time())}.{team}.sim",
        "team": {"id": team, "domain": "sim"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": "gpu-repairs"},
        "message": message,
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [
            {
                "action_id": button.get("action_id"),
                "block_id": button.get("block_id", ""),
                "text": button.get("text"),
                "value": button.get("value"),
                **({"style": button["style"]} if "style" in button else {}),
                "type": "button",
                "action_ts": now,
            }
        ],
    }


def form_body(payload: dict[str, Any]) -> bytes:
    """The request body Slack sends: the payload as one form field."""
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()


async def deliver(
    url: str,
    body: bytes,
    *,
    secret: str | None,
    timestamp: float | None = None,
    retry: int = 0,
) -> tuple[int, str]:
    """POST ``body`` to the app's Request URL as Slack does (signed unless ``secret`` is None); status and body."""
    stamp = str(int(time.time() if timestamp is None else timestamp))
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": stamp,
               "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)"}  # fmt: skip
    if secret is not None:
        headers["X-Slack-Signature"] = slack_signature(secret, stamp, body)
    if retry:
        headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as response:
        return response.status, await response.text()
