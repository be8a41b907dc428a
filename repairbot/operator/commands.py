"""What an SRE does by hand: open a repair, resume blocked ones, release a quarantine, check a policy file.

Each command talks to the cluster only through the Kubernetes API (the same
intake the agent and the webhook use, annotations the operator watches), so
it works the same against a real cluster and the sandbox. The commands that
act on the cluster live in :mod:`repairbot.kube.commands`, where the
webhook's Slack buttons call them too; they are named here for the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

import yaml

from repairbot.kube.commands import (
    CancelAsked,
    ReleaseAsked,
    Resumed,
    cancel_repair,
    open_manual_repair,
    release_quarantine,
    resume_repairs,
)
from repairbot.policy import PolicyError, PolicyFileError, load_policy

__all__ = [
    "CancelAsked",
    "ReleaseAsked",
    "Resumed",
    "cancel_repair",
    "check_policy",
    "open_manual_repair",
    "release_quarantine",
    "resume_repairs",
]


def check_policy(path: Path, out: TextIO) -> int:
    """``repairbot policy check FILE``: the effective policy as YAML, or every error by field (exit 2)."""
    try:
        policy = load_policy(path)
    except PolicyFileError as error:  # not a policy at all: one line, the file and the problem
        out.write(f"{error}\n")
        return 2
    except PolicyError as error:
        out.write(f"{path}: invalid policy\n{error}\n")
        return 2
    out.write(f"# effective policy from {path}\n")
    out.write(yaml.safe_dump(policy.to_dict(), sort_keys=False))
    return 0
