"""``POST /slack/actions``: Slack's button clicks, verified, parsed and carried out.

Slack signs every interaction request with the app's signing secret
(``X-Slack-Signature: v0=HMAC-SHA256("v0:{X-Slack-Request-Timestamp}:{raw body}")``);
slack-sdk's :class:`~slack_sdk.signature.SignatureVerifier` checks it in
constant time and refuses a timestamp more than five minutes off, so a
captured click cannot be replayed. Anything else is 401 before the body is
even parsed. The body is form-encoded ``payload=<JSON>`` of type
``block_actions`` (:func:`parse_click`).

The clicking user must be on the policy's allow-list
(:mod:`repairbot.policy.slack_actions`), by user id or as a member of an
allowed user group (asked of Slack, :mod:`repairbot.webhook.slack_groups`;
when Slack cannot say, the click is refused with the reason: fail closed);
anyone else is told so ephemerally
on the payload's ``response_url`` (for ``block_actions`` Slack shows nothing
of the HTTP answer's body) and nothing changes. An allowed click goes through
the same functions as the CLI (:mod:`repairbot.webhook.slack_apply`), and is
answered ephemerally with what happened. Slack retries a click it had no 200
for within three seconds (``X-Slack-Retry-Num``) and people double-click: each
action is idempotent on the repair's phase, so the second does nothing and
says so.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook.async_client import AsyncWebhookClient

from repairbot.notify.slack_buttons import SlackAction
from repairbot.policy.slack_actions import SlackActionsPolicy
from repairbot.webhook.metrics import WebhookMetrics
from repairbot.webhook.slack_groups import GroupLookupError, GroupMembers

log = logging.getLogger(__name__)

SLACK_ACTIONS_PATH = "/slack/actions"
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")


class ClickError(ValueError):
    """A request that is not a RepairBot button click Slack could have sent; ``str()`` says why."""


@dataclass(frozen=True, slots=True)
class Click:
    """One button click: who, which action on what, and where to answer."""

    user: str
    action: SlackAction
    value: str
    response_url: str | None

    @property
    def who(self) -> str:
        """How the history names the clicker: a mention Slack renders as the person (never their chosen name)."""
        return f"<@{self.user}> from Slack"


def verify(verifier: SignatureVerifier, headers: Mapping[str, str], body: bytes) -> bool:
    """Slack's signature and a timestamp within five minutes; False for anything malformed."""
    stamp = headers.get("X-Slack-Request-Timestamp", "")
    if not stamp.isdigit() or len(stamp) > 12:
        return False
    return verifier.is_valid(body=body, timestamp=stamp, signature=headers.get("X-Slack-Signature"))


def parse_click(body: bytes) -> Click:
    """The ``block_actions`` payload of a form-encoded body → :class:`Click`; :class:`ClickError` otherwise."""
    try:
        fields = parse_qs(body.decode("utf-8"), strict_parsing=True)
        payload = json.loads(fields["payload"][0])
    except (UnicodeDecodeError, ValueError, KeyError, IndexError):
        raise ClickError("body is not form-encoded payload=<JSON>") from None
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        raise ClickError(f"payload type {_type(payload)!r} is not block_actions")
    user = (payload.get("user") or {}).get("id") if isinstance(payload.get("user"), dict) else None
    if not isinstance(user, str) or not _USER_ID.fullmatch(user):
        raise ClickError("payload.user.id is not a Slack user id")
    actions = payload.get("actions")
    if not isinstance(actions, list) or len(actions) != 1 or not isinstance(actions[0], dict):
        raise ClickError("payload.actions must hold the one clicked element")
    try:
        action = SlackAction(str(actions[0].get("action_id")))
    except ValueError:
        raise ClickError(f"action_id {str(actions[0].get('action_id'))[:60]!r} is not a RepairBot button") from None
    value = actions[0].get("value")
    if not isinstance(value, str) or not value or len(value) > 2000:
        raise ClickError("payload.actions[0].value must name a GPURepair or an incident")
    url = payload.get("response_url")
    return Click(user, action, value, url if isinstance(url, str) and url.startswith("http") else None)


def _type(payload: Any) -> str:
    return str(payload.get("type"))[:40] if isinstance(payload, dict) else type(payload).__name__


@dataclass(frozen=True, slots=True)
class SlackActions:
    """The endpoint's configuration: the signing secret's verifier, the allow-list, and what carries a click out.

    ``apply`` runs in a worker thread (it calls the Kubernetes API through the
    synchronous client) and returns the sentence the clicker is shown.
    ``groups`` answers who is in the policy's ``allowedGroups`` (None: no
    lookups, so a group grants nothing and its clicks are refused as unverified).
    """

    verifier: SignatureVerifier
    policy: SlackActionsPolicy
    apply: Callable[[Click], str]
    groups: GroupMembers | None = None
    metrics: WebhookMetrics = field(default_factory=WebhookMetrics)

    async def handle(self, click: Click, retry: str | None) -> str:
        """Carry ``click`` out (or refuse it) and tell the clicker; returns what they were told."""
        allowed, unverified = await asyncio.to_thread(self.decide, click.user)
        if unverified is not None:
            self.metrics.slack_actions.labels("unverified").inc()
            log.warning("slack action refused user=%s action=%s value=%s reason=%s",
                        click.user, click.action, click.value, unverified)  # fmt: skip
            said = (f"Sorry <@{click.user}>, RepairBot could not check that you may act from Slack, "
                    f"so nothing was done: {unverified}.")  # fmt: skip
        elif not allowed:
            self.metrics.slack_actions.labels("refused").inc()
            log.warning("slack action refused user=%s action=%s value=%s", click.user, click.action, click.value)
            said = f"Sorry <@{click.user}>, you are not allowed to act on RepairBot repairs from Slack."
        else:
            said = await asyncio.to_thread(self.apply, click)
            self.metrics.slack_actions.labels("done").inc()
            log.info("slack action user=%s action=%s value=%s retry=%s outcome=%s",
                     click.user, click.action, click.value, retry or "0", said)  # fmt: skip
        await self._answer(click, said)
        return said

    def decide(self, user: str) -> tuple[bool, str | None]:
        """``(allowed, None)``, or ``(False, why)`` when a group's membership could not be had from Slack.

        Named in ``allowedUsers``, or a member of any allowed group that Slack
        answered for: allowed, even if another group's lookup failed. Else, if
        any lookup failed, the answer is unknown, and unknown is refused.
        """
        if self.policy.allows(user):
            return True, None
        failure: str | None = None
        for group in self.policy.allowed_groups:
            if self.groups is None:
                failure = failure or f"no Slack user group lookup is configured for <!subteam^{group}>"
                continue
            try:
                if user in self.groups.members(group):
                    return True, None
            except GroupLookupError as error:
                failure = failure or str(error)
        return False, failure

    async def _answer(self, click: Click, text: str) -> None:
        """Ephemerally, to the clicker only, on the payload's ``response_url`` (the original message stays)."""
        if click.response_url is None:
            return
        try:
            await AsyncWebhookClient(click.response_url, timeout=5).send(
                text=text, response_type="ephemeral", replace_original=False
            )
        except Exception as error:  # the action is done; a lost answer must not turn it into a 500 and a retry
            log.warning("slack response_url answer failed action=%s error=%s", click.action, error)
