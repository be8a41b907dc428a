"""Grafana and Alertmanager alert receivers: alerts → findings → intake (DESIGN.md "The flow").

The lead wires ``repairbot webhook`` to :func:`run_webhook`; the sandbox calls
:func:`start_webhook` on its own API client.
"""

from repairbot.webhook.main import SlackBot, WebhookOptions, run_webhook, start_webhook

__all__ = ["SlackBot", "WebhookOptions", "run_webhook", "start_webhook"]
