"""``repairbot``: one entry point for every component and every SRE chore.

Sub-commands are added as capabilities land; each one is a small function
that parses nothing itself and returns a process exit code.

The product's own commands (agent, operator, webhook and the SRE chores) live
here. Commands of the simulated world (``sandbox``, ``demo``, ``inject``,
``simulate``) come from the separate ``repairbot-sim`` distribution, which
registers them under the ``repairbot.commands`` entry-point group: the product
never imports the simulator, and an image without it simply lacks them.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from repairbot import __version__
from repairbot.logs import FORMATS, configure_logging

if TYPE_CHECKING:  # the agent and the operator (kubernetes, kopf) are imported only when their command runs
    from repairbot.agent.main import AgentOptions
    from repairbot.operator.main import OperatorOptions

Handler = Callable[[argparse.Namespace], int]
CommandRegistrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]
"""What a ``repairbot.commands`` entry point names: adds its sub-commands, each with a ``handler`` default."""

LOG_LEVEL_HELP = "DEBUG, INFO, WARNING (default), ERROR"
LOG_FORMAT_HELP = "text (default) or json: one JSON object per line, with the repair step's fields"

PLUGIN_GROUP = "repairbot.commands"
SIMULATOR_COMMANDS = {"sandbox", "demo", "inject", "simulate"}
"""Sub-commands the simulated world adds, named so their absence is explained rather than left to argparse."""


def _cmd_kmsg(args: argparse.Namespace) -> int:
    from repairbot.agent.kmsg_report import write_report

    if args.file == "-":
        write_report(sys.stdin, sys.stdout, as_json=args.json)
        return 0
    try:
        with open(args.file, encoding="utf-8", errors="replace") as source:
            write_report(source, sys.stdout, as_json=args.json)
    except OSError as error:
        print(f"repairbot kmsg: cannot read {args.file}: {error.strerror}", file=sys.stderr)
        return 1
    return 0


def _add_threshold_flags(agent: argparse.ArgumentParser) -> None:
    """The detectors' thresholds (the chart's ``agent.thresholds``); unset keeps each detector's default."""
    agent.add_argument(
        "--pcie-replays-per-minute", type=positive_float, default=None, metavar="N",
        help="PCIe replay counter growth per minute that raises pcie-replay (default: DCGM's budget for the "
        "link's generation times its width, 31/min on x16 Gen5)",
    )  # fmt: skip
    agent.add_argument(
        "--pcie-degraded-polls", type=positive_int, default=None, metavar="N",
        help="consecutive polls that must see a downtrained PCIe link (width or generation) before pcie-degraded "
        "(default 3)",
    )  # fmt: skip
    agent.add_argument(
        "--ib-flap-threshold", type=positive_int, default=None, metavar="N",
        help="InfiniBand link_downed increments within --ib-flap-window that raise ib-flap (default 3)",
    )  # fmt: skip
    agent.add_argument(
        "--ib-flap-window", type=positive_float, default=None, metavar="SECONDS",
        help="the window --ib-flap-threshold counts in (default 600)",
    )  # fmt: skip
    agent.add_argument(
        "--kmsg-burst-window", type=positive_float, default=None, metavar="SECONDS",
        help="identical Xid lines (same code, same GPU) with less silence than this between them are one burst "
        "(default 180, as NVIDIA's Fleet Intelligence)",
    )  # fmt: skip
    agent.add_argument(
        "--kmsg-report-interval", type=positive_float, default=None, metavar="SECONDS",
        help="how often a burst's repeats are reported to intake (default 60)",
    )  # fmt: skip
    agent.add_argument(
        "--report-codes", default=None, metavar="CODES",
        help="finding classes (globs, comma-separated) the operator's escalation rules count: reported to intake "
        "even when their own action is none, e.g. xid-13,xid-31 (the chart derives it from policy.escalations)",
    )  # fmt: skip


def agent_options(args: argparse.Namespace) -> AgentOptions:
    """The agent's options from its command line (the chart's DaemonSet args reach the agent through here)."""
    from repairbot.agent.main import AgentOptions

    return AgentOptions(
        node=args.node,
        kubeconfig=args.kubeconfig,
        sysfs_root=Path(args.sysfs_root),
        kmsg_path=Path(args.kmsg),
        expected_gpus=args.expected_gpus,
        dcgm_url=args.dcgm_url,
        interval=args.interval,
        metrics_port=args.metrics_port,
        ib_ports=tuple(p.strip() for p in args.ib_ports.split(",") if p.strip()) if args.ib_ports else None,
        ib_rate_gbps=args.ib_rate_gbps,
        state_dir=Path(args.state_dir) if args.state_dir else None,
        kmsg_first_start_lookback=args.kmsg_first_start_lookback,
        pcie_replays_per_minute=args.pcie_replays_per_minute,
        pcie_degraded_polls=args.pcie_degraded_polls,
        ib_flap_threshold=args.ib_flap_threshold,
        ib_flap_window_s=args.ib_flap_window,
        kmsg_burst_window_s=args.kmsg_burst_window,
        kmsg_report_interval_s=args.kmsg_report_interval,
        counted_codes=tuple(c.strip() for c in args.report_codes.split(",") if c.strip()) if args.report_codes else (),
    )


def _cmd_agent(args: argparse.Namespace) -> int:
    from repairbot.agent.main import run_agent, run_once

    options = agent_options(args)
    if args.once:
        return run_once(options, as_json=args.json, out=sys.stdout)
    return run_agent(options)


def _cmd_operator(args: argparse.Namespace) -> int:
    from repairbot.operator.main import run_operator

    return run_operator(operator_options(args))


def operator_options(args: argparse.Namespace) -> OperatorOptions:
    """``repairbot operator``'s flags as the options the operator runs with (defaults where a flag is absent)."""
    from repairbot.notify.http_access import HttpAccess
    from repairbot.operator.main import OperatorOptions
    from repairbot.remediations.prometheus_access import PrometheusAccess

    options = OperatorOptions(
        policy_path=Path(args.policy) if args.policy else None,
        kubeconfig=args.kubeconfig,
        metrics_port=args.metrics_port,
        health_port=args.health_port,
        leader_election=not args.no_leader_election,
        api_qps=args.api_qps,
        api_burst=args.api_burst,
        max_parallel=args.max_parallel,
        prometheus=PrometheusAccess(
            ca_file=Path(args.prometheus_ca_file) if args.prometheus_ca_file else None,
            token_file=Path(args.prometheus_token_file) if args.prometheus_token_file else None,
            basic_auth_file=Path(args.prometheus_basic_auth_file) if args.prometheus_basic_auth_file else None,
        ),
        alertmanager=HttpAccess(
            ca_file=Path(args.alertmanager_ca_file) if args.alertmanager_ca_file else None,
            token_file=Path(args.alertmanager_token_file) if args.alertmanager_token_file else None,
            basic_auth_file=Path(args.alertmanager_basic_auth_file) if args.alertmanager_basic_auth_file else None,
        ),
    )
    if args.namespace:
        options.namespace = args.namespace
    if args.lease_name:
        options.lease_name = args.lease_name
    if args.breaker_configmap:
        options.breaker_configmap = args.breaker_configmap
    return options


def _cmd_repair(args: argparse.Namespace) -> int:
    from kubernetes.client.rest import ApiException

    from repairbot.kube.client import api_client
    from repairbot.kube.intake import IntakeRefused
    from repairbot.model import Action
    from repairbot.operator.commands import open_manual_repair

    api = api_client(args.kubeconfig)
    try:
        action = Action(args.action) if args.action else None
        result = open_manual_repair(api, args.node, reason=args.reason, action=action, dry_run=args.dry_run)
    except IntakeRefused as refused:
        print(f"repairbot repair: {refused}", file=sys.stderr)
        return 1
    except ApiException as error:
        print(f"repairbot repair: node {args.node}: {error.reason} ({error.status})", file=sys.stderr)
        return 1
    if result.quarantined:
        print(f"recorded on quarantine {result.name} of node {result.node}; nothing runs until "
              f"`repairbot release {result.node}`")  # fmt: skip
        return 0
    verb = "opened" if result.created else "merged into active repair"
    print(f"{verb} {result.name} for node {result.node}")
    return 0


def _cmd_release(args: argparse.Namespace) -> int:
    import getpass

    from kubernetes.client.rest import ApiException

    from repairbot.kube.client import api_client
    from repairbot.operator.commands import release_quarantine

    by = args.by or f"{getpass.getuser()} (repairbot release)"
    try:
        asked = release_quarantine(api_client(args.kubeconfig), args.node, by=by)
    except LookupError as error:
        print(f"repairbot release: {error}", file=sys.stderr)
        return 1
    except ApiException as error:
        print(f"repairbot release: node {args.node}: {error.reason} ({error.status})", file=sys.stderr)
        return 1
    for item in asked:
        print(f"release of {item.node} asked on {item.name}: the operator removes the taint and label, "
              "uncordons only if RepairBot cordoned it, and marks the repair Released")  # fmt: skip
    return 0


def _cmd_resume(args: argparse.Namespace) -> int:
    from repairbot.kube.client import api_client
    from repairbot.operator.commands import resume_repairs

    if not args.names and not args.all:
        print("repairbot resume: name one or more GPURepairs, or --all for every Blocked one", file=sys.stderr)
        return 2
    try:
        resumed = resume_repairs(api_client(args.kubeconfig), args.names, all_blocked=args.all)
    except LookupError as error:
        print(f"repairbot resume: {error}", file=sys.stderr)
        return 1
    for item in resumed:
        print(f"resuming {item.name} (node {item.node}, was {item.was})")
    if not resumed:
        print("nothing to resume")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    import json
    from datetime import UTC, datetime

    from kubernetes.client.rest import ApiException

    from repairbot.kube.client import api_client
    from repairbot.operator.main import read_policy
    from repairbot.operator.status import read_cluster, summarize
    from repairbot.operator.status_text import render
    from repairbot.policy import PolicyError

    policy = None
    if args.policy:
        try:
            policy = read_policy(Path(args.policy))
        except PolicyError as error:
            print(f"repairbot status: bad policy {args.policy}: {error}", file=sys.stderr)
            return 2
    names = {"lease_name": args.lease_name, "breaker_configmap": args.breaker_configmap}
    release_names = {key: value for key, value in names.items() if value}
    try:
        read = read_cluster(api_client(args.kubeconfig), namespace=args.namespace, policy=policy,
                            policy_source=f"file {args.policy}" if args.policy else None,
                            **release_names)  # fmt: skip
    except ApiException as error:
        print(f"repairbot status: cannot list GPURepairs and GPU nodes: {error.reason} ({error.status})",
              file=sys.stderr)  # fmt: skip
        return 1
    status = summarize(read, datetime.now(UTC))
    if args.json:
        json.dump(status.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(status))
    return 0


def _cmd_cancel(args: argparse.Namespace) -> int:
    import getpass

    from repairbot.kube.client import api_client
    from repairbot.operator.commands import cancel_repair

    by = args.by or f"{getpass.getuser()} (repairbot cancel)"
    try:
        asked = cancel_repair(api_client(args.kubeconfig), args.name, by=by)
    except LookupError as error:
        print(f"repairbot cancel: {error}", file=sys.stderr)
        return 1
    print(f"cancelling {asked.name} (node {asked.node}, was {asked.was}): the operator stops and leaves the node "
          "cordoned for a human")  # fmt: skip
    return 0


def _cmd_webhook(args: argparse.Namespace) -> int:
    from repairbot.webhook import WebhookOptions, run_webhook

    options = WebhookOptions(
        host=args.host,
        port=args.port,
        kubeconfig=args.kubeconfig,
        token_file=Path(args.token_file) if args.token_file else None,
        basic_auth_file=Path(args.basic_auth_file) if args.basic_auth_file else None,
        hmac_secret_file=Path(args.hmac_secret_file) if args.hmac_secret_file else None,
        hmac_timestamp_header=args.hmac_timestamp_header,
        insecure_no_auth=args.insecure_no_auth,
        alert_mapping=Path(args.alert_mapping) if args.alert_mapping else None,
        slack_signing_secret_file=Path(args.slack_signing_secret_file) if args.slack_signing_secret_file else None,
        policy=Path(args.policy) if args.policy else None,
    )
    return run_webhook(options)


def _cmd_policy_check(args: argparse.Namespace) -> int:
    from repairbot.operator.commands import check_policy

    return check_policy(Path(args.file), sys.stdout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="repairbot",
        description="RepairBot repairs GPU nodes in Kubernetes: detect, cordon, drain, repair, validate, return.",
    )
    parser.add_argument("--version", action="version", version=f"repairbot {__version__}")
    parser.add_argument("--log-level", default="WARNING", help=LOG_LEVEL_HELP)
    parser.add_argument("--log-format", default="text", choices=FORMATS, help=LOG_FORMAT_HELP)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    agent = commands.add_parser(
        "agent",
        help="run the node agent (DaemonSet), or --once for one health report of this node",
        description="Watch this node's GPUs (NVML, kernel log, sysfs) and report findings to RepairBot. "
        "With --once, print one full health report and exit: 0 healthy or unknown, 1 a GPU fault found.",
    )
    agent.add_argument("--node", default=os.environ.get("NODE_NAME") or socket.gethostname(), help="this node's name")
    agent.add_argument("--once", action="store_true", help="one report of every GPU and signal, then exit")
    agent.add_argument("--json", action="store_true", help="with --once: JSON instead of text")
    agent.add_argument("--kubeconfig", default=None, help="default: $KUBECONFIG, else in-cluster")
    agent.add_argument("--sysfs-root", default="/sys")
    agent.add_argument("--kmsg", default="/dev/kmsg", help="kernel log to follow (a file works too)")
    agent.add_argument("--expected-gpus", type=int, default=None, help="default: the node's nvidia.com/gpu.count")
    agent.add_argument("--dcgm-url", default=None, help="scrape a local dcgm-exporter, e.g. http://localhost:9400/metrics")
    agent.add_argument("--interval", type=float, default=10.0, help="seconds between polls (default 10)")
    agent.add_argument(
        "--ib-ports", default=None, help="InfiniBand ports to check, e.g. mlx5_0/1,mlx5_1/1 (default: every port)"
    )
    agent.add_argument(
        "--ib-rate-gbps", type=float, default=None, help="link rate a healthy port runs at, e.g. 400 (default: none)"
    )
    agent.add_argument("--metrics-port", type=int, default=9402, help="/metrics and /healthz port (0: off)")
    agent.add_argument(
        "--state-dir",
        default=None,
        help="host directory for the kernel-log cursor, kept across agent restarts (the chart: /var/lib/repairbot)",
    )
    agent.add_argument(
        "--kmsg-first-start-lookback",
        type=_seconds,
        default=600.0,
        metavar="SECONDS",
        help="with no kernel-log cursor for this boot (an upgrade, a lost state dir): report only records logged "
        "this long before the agent started, and everything after (default 600)",
    )
    _add_threshold_flags(agent)
    agent.set_defaults(handler=_cmd_agent)

    operator = commands.add_parser(
        "operator",
        help="run the operator: cordon, drain, repair, validate, return or quarantine GPU nodes",
        description="Refuses to start on a bad policy. Two replicas elect one active leader through a Lease.",
    )
    operator.add_argument(
        "--policy", default=os.environ.get("REPAIRBOT_POLICY"), help="policy YAML (default: built-in)"
    )
    operator.add_argument("--kubeconfig", default=None, help="default: $KUBECONFIG, else in-cluster")
    operator.add_argument("--namespace", default=None, help="for the Lease and the breaker (default: $POD_NAMESPACE)")
    operator.add_argument("--metrics-port", type=int, default=9403, help="/metrics port (0: off)")
    operator.add_argument("--health-port", type=int, default=8081, help="/healthz liveness port (0: off)")
    operator.add_argument("--no-leader-election", action="store_true", help="run active at once (one replica only)")
    operator.add_argument("--api-qps", type=positive_float, default=50.0,
                          help="API requests per second once the burst is spent (client-go's QPS; default 50)")
    operator.add_argument("--api-burst", type=positive_int, default=100,
                          help="API requests sent at once before the QPS limit applies (default 100)")
    operator.add_argument("--max-parallel", type=positive_int, default=64,
                          help="repairs decided at once (default 64); the rate limit bounds the API load")
    operator.add_argument(
        "--lease-name", default=None, help="the leader-election Lease, one per release (default: repairbot-operator)"
    )
    operator.add_argument(
        "--breaker-configmap", default=None,
        help="the storm breaker's ConfigMap, one per release (default: repairbot-breaker)",
    )  # fmt: skip
    operator.add_argument(
        "--prometheus-ca-file", default=None,
        help="CA bundle the quiet-period Prometheus's certificate must chain to (default: the system's)",
    )  # fmt: skip
    credentials = operator.add_mutually_exclusive_group()
    credentials.add_argument(
        "--prometheus-token-file", default=None, help="bearer token for Prometheus, re-read on every query"
    )
    credentials.add_argument(
        "--prometheus-basic-auth-file", default=None, help="a file holding user:password for Prometheus"
    )
    operator.add_argument(
        "--alertmanager-ca-file", default=None,
        help="CA bundle Alertmanager's certificate must chain to (default: the system's); TLS is always verified",
    )  # fmt: skip
    am_credentials = operator.add_mutually_exclusive_group()
    am_credentials.add_argument(
        "--alertmanager-token-file", default=None, help="bearer token for Alertmanager, re-read on every call"
    )
    am_credentials.add_argument(
        "--alertmanager-basic-auth-file", default=None, help="a file holding user:password for Alertmanager"
    )
    operator.set_defaults(handler=_cmd_operator)

    webhook = commands.add_parser(
        "webhook",
        help="receive Grafana and Alertmanager alerts: tag the node faulty and open a repair",
        description="POST /webhook/grafana and /webhook/alertmanager; GET /healthz, /metrics, /openapi.json. "
        "Secrets come from files or $REPAIRBOT_WEBHOOK_TOKEN, $REPAIRBOT_WEBHOOK_USERNAME/_PASSWORD, "
        "$REPAIRBOT_WEBHOOK_HMAC_SECRET.",
    )
    webhook.add_argument("--host", default="0.0.0.0")
    webhook.add_argument("--port", type=int, default=8080)
    webhook.add_argument("--kubeconfig", default=None)
    webhook.add_argument("--token-file", default=None, help="bearer token the senders must present")
    webhook.add_argument("--basic-auth-file", default=None, help="a file holding user:password")
    webhook.add_argument("--hmac-secret-file", default=None, help="Grafana's HMAC signing secret")
    webhook.add_argument("--hmac-timestamp-header", default=None, help="Grafana's timestamp header, if set")
    webhook.add_argument("--alert-mapping", default=None, help="YAML rules: alertname → finding class")
    webhook.add_argument("--insecure-no-auth", action="store_true", help="accept unauthenticated alerts (dev only)")
    webhook.add_argument("--slack-signing-secret-file", default=None,
                         help="the Slack app's signing secret (else $REPAIRBOT_SLACK_SIGNING_SECRET): "
                              "serve POST /slack/actions for the repair buttons")  # fmt: skip
    webhook.add_argument("--policy", default=None, help="policy file: who may act from Slack")
    webhook.set_defaults(handler=_cmd_webhook)

    repair = commands.add_parser("repair", help="open a repair of a node by hand (or merge into its active one)")
    repair.add_argument("node")
    repair.add_argument("--reason", required=True, help="why, in words the Slack thread and ticket will show")
    repair.add_argument(
        "--action",
        choices=["notify", "gpu-reset", "driver-reload", "reboot", "power-cycle", "quarantine"],
        help="the first rung (on a node with an active repair: what to do next, e.g. quarantine a hold)",
    )
    repair.add_argument("--dry-run", action="store_true", help="record what would happen, touch nothing")
    repair.add_argument("--kubeconfig", default=None)
    repair.set_defaults(handler=_cmd_repair)

    release = commands.add_parser(
        "release", help="return a quarantined node: taint and label off, uncordoned if RepairBot cordoned it"
    )
    release.add_argument("node")
    release.add_argument("--by", default=None, help="who releases it, for the history (default: your user name)")
    release.add_argument("--kubeconfig", default=None)
    release.set_defaults(handler=_cmd_release)

    resume = commands.add_parser("resume", help="resume Blocked repairs (storm breaker, drain timeout)")
    resume.add_argument("names", nargs="*", help="GPURepair names")
    resume.add_argument("--all", action="store_true", help="every Blocked repair")
    resume.add_argument("--kubeconfig", default=None)
    resume.set_defaults(handler=_cmd_resume)

    status = commands.add_parser(
        "status",
        help="one screen for the on-call: active repairs, storm breakers, budget, incidents, what waits for a human",
        description="Reads the GPURepairs, GPU nodes, the breaker ConfigMap, the operator's Lease and the policy "
        "ConfigMap (get and list only; it changes nothing). Exit 0 when read, 1 when the repairs cannot be listed.",
    )
    status.add_argument("--json", action="store_true", help="the same facts as one JSON document")
    status.add_argument(
        "--policy", default=None, help="policy YAML for the budget's cap (default: the operator's policy ConfigMap)"
    )
    status.add_argument(
        "--namespace", default=os.environ.get("POD_NAMESPACE", "repairbot"),
        help="RepairBot's namespace: the breaker, the Lease, the policy (default: $POD_NAMESPACE, else repairbot)",
    )  # fmt: skip
    status.add_argument(
        "--lease-name", default=None, help="the release's operator Lease (default: repairbot-operator)"
    )
    status.add_argument(
        "--breaker-configmap", default=None,
        help="the release's storm-breaker ConfigMap, as the operator's (default: repairbot-breaker)",
    )  # fmt: skip
    status.add_argument("--kubeconfig", default=None, help="default: $KUBECONFIG, else in-cluster")
    status.set_defaults(handler=_cmd_status)

    cancel = commands.add_parser("cancel", help="stop a repair, leaving its node cordoned for a human")
    cancel.add_argument("name", help="GPURepair name")
    cancel.add_argument("--by", default=None, help="who asks (default: your login), recorded in the history")
    cancel.add_argument("--kubeconfig", default=None)
    cancel.set_defaults(handler=_cmd_cancel)

    policy = commands.add_parser("policy", help="policy file tools")
    policy_commands = policy.add_subparsers(dest="policy_command", metavar="SUBCOMMAND", required=True)
    check = policy_commands.add_parser("check", help="print the effective policy, or every error by field")
    check.add_argument("file")
    check.set_defaults(handler=_cmd_policy_check)

    kmsg = commands.add_parser(
        "kmsg",
        help="parse kernel-log text (dmesg, journal, /dev/kmsg) and print the GPU findings in it",
    )
    kmsg.add_argument("file", nargs="?", default="-", help="a log file, or - for standard input (default)")
    kmsg.add_argument("--json", action="store_true", help="one JSON object per finding")
    kmsg.set_defaults(handler=_cmd_kmsg)

    for plugin in sorted(entry_points(group=PLUGIN_GROUP), key=lambda point: point.name):
        register: CommandRegistrar = plugin.load()
        register(commands)
    _accept_logging_options_after(parser)
    return parser


def _accept_logging_options_after(parser: argparse.ArgumentParser) -> None:
    """``repairbot operator --log-format json`` works as well as ``repairbot --log-format json operator``.

    Each sub-command (plugins' and nested ones included) takes the same options with no default of its
    own (``SUPPRESS``): given after the sub-command they win, left out they leave the global value alone.
    """
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for sub in set(action.choices.values()):
            known = {option for each in sub._actions for option in each.option_strings}
            if "--log-level" not in known:
                sub.add_argument("--log-level", default=argparse.SUPPRESS, help=LOG_LEVEL_HELP)
            if "--log-format" not in known:
                sub.add_argument("--log-format", default=argparse.SUPPRESS, choices=FORMATS, help=LOG_FORMAT_HELP)
            _accept_logging_options_after(sub)


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def _seconds(text: str) -> float:
    """A duration of 0 seconds or more; a bad one is refused by argparse with its reason."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 seconds or more, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _command_names(parser: argparse.ArgumentParser) -> list[str]:
    """Every sub-command ``parser`` knows, built-in or added by an installed plugin."""
    return [
        name
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for name in action.choices
    ]


GLOBAL_OPTIONS_WITH_VALUE = frozenset({"--log-level", "--log-format"})


def _command_word(words: Sequence[str]) -> str | None:
    """The sub-command's name in ``words``, past the global options given before it."""
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word in GLOBAL_OPTIONS_WITH_VALUE:
            skip = True
        elif not word.startswith("-"):
            return word
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    missing = SIMULATOR_COMMANDS - set(_command_names(parser))
    command = _command_word(words)
    if command in missing:
        print(f"repairbot {command}: this command comes with the simulated world, which is not installed here; "
              "install it with `pip install ./sim` from a checkout (`make demo` does)", file=sys.stderr)  # fmt: skip
        return 2
    args = parser.parse_args(words)
    configure_logging(args.log_level, args.log_format)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
