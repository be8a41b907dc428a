"""The simulated world's ``repairbot`` sub-commands: ``sandbox``, ``demo`` and ``inject``.

They are registered through the ``repairbot.commands`` entry point of the ``repairbot-sim``
distribution (``sim/pyproject.toml``), so ``repairbot demo`` works wherever the simulator is
installed and the product image, which lacks it, has no command that would need it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from repairbot.cli import positive_float, positive_int


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from repairbot.policy import PolicyError, PolicyFileError, load_policy
    from repairbot_sim.sandbox import SandboxConfig, run_until_signalled

    policy_path = Path(args.policy) if args.policy else None
    if policy_path is not None:
        # Checked before anything starts, as `repairbot operator` does: a typo never reaches the operator thread.
        try:
            load_policy(policy_path)
        except PolicyError as error:
            detail = f"{error}" if isinstance(error, PolicyFileError) else f"{policy_path}:\n{error}"
            print(f"repairbot sandbox: bad policy {detail}", file=sys.stderr)
            return 2
    config = SandboxConfig(
        state_dir=Path(args.state_dir),
        nodes=args.nodes,
        api_port=args.port,
        pod_termination_seconds=args.pod_termination_seconds,
        policy_path=policy_path,
        alertmanager_url=args.alertmanager,
        grafana=args.grafana,
        slurm=args.slurm,
    )
    asyncio.run(run_until_signalled(config))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from repairbot_sim.demo import DemoOptions, run_demo
    from repairbot_sim.demo_scenarios import MIN_NODES

    if args.nodes < MIN_NODES:
        print(f"repairbot demo: --nodes must be at least {MIN_NODES} (four leaf switches of four)", file=sys.stderr)
        return 2
    options = DemoOptions(
        state_dir=Path(args.state_dir),
        nodes=args.nodes,
        live=False if args.no_live else None,
        keep=args.keep,
        speed=args.speed,
        policy_path=Path(args.policy) if args.policy else None,
        rolling_restart=args.rolling_restart,
    )
    try:
        return asyncio.run(run_demo(options))
    except KeyboardInterrupt:
        return 130


def _cmd_inject(args: argparse.Namespace) -> int:
    import httpx

    from repairbot_sim.sandbox import read_state

    try:
        state = read_state(Path(args.state_dir))
    except FileNotFoundError as error:
        print(f"repairbot inject: {error}", file=sys.stderr)
        return 1
    url = f"{state['control']}/nodes/{args.node}/faults"
    try:
        # An agent restart waits for the old agent's threads to end: give it time.
        response = httpx.post(url, json={"fault": args.fault, "gpu": args.gpu}, timeout=30)
    except httpx.HTTPError as error:
        print(f"repairbot inject: sandbox at {state['control']} not answering: {error}", file=sys.stderr)
        return 1
    body = response.json()
    if response.status_code != 202:
        print(f"repairbot inject: {body.get('error', response.text)}", file=sys.stderr)
        return 1
    if body["fault"] == "agent-restart":
        print(f"restarted the agent on {body['node']} at {body['injectedAt']}")
    else:
        print(f"injected {body['fault']} on {body['node']} GPU {body['gpu']} at {body['injectedAt']}")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``sandbox``, ``demo`` and ``inject`` to ``repairbot``'s sub-commands."""
    sandbox = commands.add_parser(
        "sandbox",
        help="run a simulated GPU cluster (emulated Kubernetes API) on 127.0.0.1",
        description="Start the embedded simulated cluster and serve until interrupted. "
        "Point kubectl at STATE_DIR/kubeconfig.",
    )
    sandbox.add_argument("--state-dir", default="rb-state", help="where kubeconfig and state.json go")
    sandbox.add_argument("--nodes", type=positive_int, default=8, help="simulated GPU nodes (default 8)")
    sandbox.add_argument("--port", type=int, default=0, help="API server port (default: any free port)")
    sandbox.add_argument(
        "--pod-termination-seconds",
        type=int,
        default=None,
        help="how long evicted training pods take to terminate (default: at once)",
    )
    sandbox.add_argument(
        "--policy",
        default=None,
        metavar="FILE",
        help="the sandbox operator's policy YAML (default: sim/repairbot_sim/data/policy-sandbox.yaml); "
        "a bad file stops the sandbox before it starts, naming every bad field",
    )
    sandbox.add_argument(
        "--alertmanager",
        default=None,
        metavar="URL",
        help="hold an Alertmanager silence for each node RepairBot drains, there (e.g. http://127.0.0.1:9093); "
        "state.json records it",
    )
    sandbox.add_argument(
        "--grafana", action="store_true", help="start a fake Grafana and annotate every repair step there"
    )
    sandbox.add_argument(
        "--slurm",
        action="store_true",
        help="start a real Slurm beside it (munged, slurmctld, one slurmd per node; Debian's packages, "
        "`make system-deps`), label every node repairbot.io/slurm-node and enable the policy's slurm section; "
        "state.json's slurmConf is the SLURM_CONF for sinfo, squeue and sbatch",
    )
    sandbox.set_defaults(handler=_cmd_sandbox)

    inject = commands.add_parser(
        "inject",
        help="inject a fault into a simulated node of a running sandbox",
        description="Faults: xid:<code>, ecc-dbe, row-remap-pending, row-remap-failure, fall-off-bus, "
        "pcie-degrade, ib-port-down, ib-flap, thermal, gpu-missing, nvlink-down; and agent-restart (replace the "
        "node's agent with a fresh one, as a DaemonSet rollout does; the node's GPUs and kernel log stay).",
    )
    inject.add_argument("--state-dir", default="rb-state", help="the sandbox's state directory")
    inject.add_argument("node", help="e.g. gpu-node-002")
    inject.add_argument("fault", help="e.g. xid:79")
    inject.add_argument("--gpu", type=int, default=0, help="GPU index (HCA index for ib-* faults)")
    inject.set_defaults(handler=_cmd_inject)

    demo = commands.add_parser(
        "demo",
        help="watch RepairBot handle a bad afternoon on a simulated GPU pod (exit 0 only if every repair ended right)",
        description="Start the sandbox, inject a mix of GPU, memory, InfiniBand and storm faults plus a Grafana "
        "alert, show the nodes, GPURepairs and every step live, then a summary with each scenario's expectation "
        "checked: the exit code is 0 only if all of them held, so CI runs it too.",
    )
    demo.add_argument("--state-dir", default="rb-state", help="where kubeconfig and state.json go")
    demo.add_argument("--nodes", type=positive_int, default=16, help="simulated GPU nodes (default and minimum 16)")
    demo.add_argument("--no-live", action="store_true", help="plain timestamped lines (default when not a terminal)")
    demo.add_argument("--keep", action="store_true", help="keep the sandbox running after the summary, until Ctrl-C")
    demo.add_argument("--speed", type=positive_float, default=1.0, help="faster (2) or slower (0.5) show")
    demo.add_argument("--policy", default=None, help="operator policy (default: the simulator's data/policy-demo.yaml)")
    demo.add_argument(
        "--rolling-restart",
        action="store_true",
        help="restart every agent mid-repair, as a DaemonSet rollout does (every scenario must still end right)",
    )
    demo.set_defaults(handler=_cmd_demo)
