"""Telling humans: the Slack thread and the Jira ticket that follow every repair.

SREs live in the Slack thread, on-call lives in the Jira ticket; both are told
the same story in the same words (:mod:`.messages`, pure). The two clients
(:mod:`.slack`, :mod:`.jira`) only deliver, and raise :class:`NotifyError`
rather than swallow a failure, because the caller — the operator's
notification dispatcher, which walks each GPURepair's history with a cursor
per target kept in its status — is what guarantees every step arrives, in
order, without a Slack or Jira outage ever blocking a repair.

Like every ``notify`` module this package imports only ``model``, ``xid`` and
``policy`` of ours (DESIGN.md's dependency rule).
"""

from repairbot.notify.errors import NotifyError

__all__ = ["NotifyError"]
