"""``repairbot webhook``: serve the Grafana/Alertmanager receivers until SIGTERM.

Start-up refuses what would be unsafe or silently wrong — no authentication
(unless ``insecure_no_auth``), an unreadable secret, a bad alert mapping —
with one clear line and exit status 2, so a misconfigured Deployment
crash-loops visibly instead of serving. :func:`start_webhook` is the same
server for the sandbox and tests, on an API client they already hold.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from kubernetes import client
from slack_sdk.signature import SignatureVerifier

from repairbot.kube.client import api_client
from repairbot.policy import Policy, PolicyError, PolicyFileError, load_policy
from repairbot.webhook.auth import (
    DEFAULT_MAX_SKEW,
    DEFAULT_SIGNATURE_HEADER,
    AuthConfigError,
    WebhookAuth,
    slack_signing_secret,
)
from repairbot.webhook.cache import WebhookCache
from repairbot.webhook.handling import AlertHandler, KubeSink
from repairbot.webhook.mapping import DEFAULT_NODE_LABELS, AlertRules, MappingError
from repairbot.webhook.metrics import WebhookMetrics
from repairbot.webhook.server import DEFAULT_BODY_LIMIT, build_app
from repairbot.webhook.slack_actions import SlackActions
from repairbot.webhook.slack_apply import SlackApplier
from repairbot.webhook.slack_groups import GroupMembers

log = logging.getLogger(__name__)

EXIT_CONFIG = 2


@dataclass
class WebhookOptions:
    """Everything ``repairbot webhook`` takes. Secrets are named by file or env, never passed as values."""

    host: str = "0.0.0.0"
    port: int = 8080
    kubeconfig: str | None = None
    token_file: Path | None = None
    basic_auth_file: Path | None = None
    hmac_secret_file: Path | None = None
    hmac_signature_header: str = DEFAULT_SIGNATURE_HEADER
    hmac_timestamp_header: str | None = None
    hmac_max_skew: float = DEFAULT_MAX_SKEW
    insecure_no_auth: bool = False
    alert_mapping: Path | None = None
    body_limit: int = DEFAULT_BODY_LIMIT
    node_labels: tuple[str, ...] = field(default=DEFAULT_NODE_LABELS)
    slack_signing_secret_file: Path | None = None
    """The Slack app's signing secret (else ``$REPAIRBOT_SLACK_SIGNING_SECRET``); none: no ``/slack/actions``."""
    policy: Path | None = None
    """The policy file: ``notifications.slack.actions`` says who may act from Slack (none: the defaults)."""


def load_auth(options: WebhookOptions) -> WebhookAuth:
    """The auth checks from the options' files and the environment; :class:`AuthConfigError` if unusable."""
    return WebhookAuth.from_env_and_files(
        token_file=options.token_file,
        basic_auth_file=options.basic_auth_file,
        hmac_secret_file=options.hmac_secret_file,
        signature_header=options.hmac_signature_header,
        timestamp_header=options.hmac_timestamp_header,
        max_skew=options.hmac_max_skew,
        insecure_no_auth=options.insecure_no_auth,
    )


def load_slack_actions(
    api: client.ApiClient,
    options: WebhookOptions,
    *,
    signing_secret: str | None = None,
    slack_bot: SlackBot | None = None,
    metrics: WebhookMetrics | None = None,
) -> SlackActions | None:
    """The Slack buttons' endpoint, when a signing secret is configured; :class:`AuthConfigError` if unusable.

    With ``allowedGroups`` in the policy, group members are asked of Slack
    with the bot token (``slack_bot``, else ``$REPAIRBOT_SLACK_TOKEN`` and
    ``$REPAIRBOT_SLACK_API_URL``); with no token the webhook still starts, and
    refuses a group member's click saying so (it cannot check them).
    """
    secret = signing_secret or slack_signing_secret(options.slack_signing_secret_file)
    if secret is None:
        return None
    try:
        policy = load_policy(options.policy) if options.policy else Policy()
    except (PolicyError, PolicyFileError) as error:
        raise AuthConfigError(f"webhook: policy {options.policy}: {error}") from None
    actions = policy.notifications.slack.actions
    metrics = metrics or WebhookMetrics()
    groups = None
    if actions.allowed_groups:
        bot = slack_bot or SlackBot.from_environment(os.environ)
        if not bot.token:
            log.warning("webhook: policy allows Slack user groups %s but no bot token is set "
                        "(REPAIRBOT_SLACK_TOKEN): their clicks are refused",
                        ",".join(actions.allowed_groups))  # fmt: skip
        groups = GroupMembers.from_token(
            bot.token, base_url=bot.api_url, on_error=lambda code: metrics.slack_group_errors.labels(code).inc()
        )
    return SlackActions(SignatureVerifier(secret), actions, SlackApplier(api), groups=groups, metrics=metrics)


@dataclass(frozen=True, slots=True)
class SlackBot:
    """The Slack bot token (and API URL, for the sandbox) the webhook asks user group members with."""

    token: str | None
    api_url: str | None = None

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> SlackBot:
        return cls(env.get("REPAIRBOT_SLACK_TOKEN") or None, env.get("REPAIRBOT_SLACK_API_URL") or None)


def load_rules(options: WebhookOptions) -> AlertRules:
    return AlertRules.load(options.alert_mapping) if options.alert_mapping else AlertRules.default()


async def start_webhook(
    api: client.ApiClient,
    options: WebhookOptions,
    *,
    auth: WebhookAuth | None = None,
    metrics: WebhookMetrics | None = None,
    slack_signing_secret: str | None = None,
    slack_bot: SlackBot | None = None,
) -> tuple[web.AppRunner, str]:
    """Start serving on ``options.host:options.port`` (port 0 picks one); returns the runner and base URL.

    ``auth`` overrides what the options' files and environment say (the
    sandbox passes a token it generated), and ``slack_signing_secret`` the
    Slack app's (the sandbox's fake Slack signs with it), ``slack_bot`` the
    bot token user groups are looked up with. Stop with ``await runner.cleanup()``.
    """
    auth = auth or load_auth(options)
    metrics = metrics or WebhookMetrics()
    cache = WebhookCache(api).start()  # nodes and repairs by watch: a notification then costs only its writes
    handler = AlertHandler(KubeSink(api, cache), load_rules(options), node_labels=options.node_labels)
    slack = load_slack_actions(api, options, signing_secret=slack_signing_secret, slack_bot=slack_bot, metrics=metrics)
    app = build_app(handler, auth, metrics=metrics, body_limit=options.body_limit, slack=slack)

    async def stop_cache(_: web.Application) -> None:
        await asyncio.to_thread(cache.stop)

    app.on_cleanup.append(stop_cache)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, options.host, options.port)
    await site.start()
    port = runner.addresses[0][1] if runner.addresses else options.port
    host = "127.0.0.1" if options.host in ("0.0.0.0", "") else options.host
    url = f"http://{host}:{port}"
    log.info("webhook serving url=%s auth=%s", url, _auth_summary(auth))
    return runner, url


def run_webhook(options: WebhookOptions) -> int:
    """Serve until SIGTERM/SIGINT; 0 on a clean stop, 2 on a configuration error (message logged)."""
    try:
        auth = load_auth(options)
        load_rules(options)
        slack_signing_secret(options.slack_signing_secret_file)
        if options.policy:
            load_policy(options.policy)
    except (AuthConfigError, MappingError, PolicyError, PolicyFileError) as error:
        log.error("%s", error)
        return EXIT_CONFIG
    api = api_client(options.kubeconfig)
    try:
        asyncio.run(_serve(api, options, auth))
    finally:
        api.close()
    return 0


async def _serve(api: client.ApiClient, options: WebhookOptions, auth: WebhookAuth) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner, _ = await start_webhook(api, options, auth=auth)
    try:
        await stop.wait()
    finally:
        log.info("webhook stopping")
        await runner.cleanup()


def _auth_summary(auth: WebhookAuth) -> str:
    parts = [
        name for name, on in (("bearer", auth.bearer_token), ("basic", auth.basic), ("hmac", auth.hmac_secret)) if on
    ]
    return ",".join(parts) or "NONE (insecure, development only)"
