"""A standby replica answers its liveness probe while it waits for the Lease, and frees the port for kopf."""

from __future__ import annotations

import socket

import httpx

from repairbot.operator.standby import StandbyHealth


def test_standby_is_alive_while_electing_and_frees_its_port() -> None:
    electing = [True]
    health = StandbyHealth(0, lambda: electing[0], host="127.0.0.1")
    health.start()
    url = f"http://127.0.0.1:{health.port}"
    try:
        answer = httpx.get(f"{url}/healthz", timeout=5)
        assert answer.status_code == 200 and answer.json() == {"role": "standby", "electing": True}
        electing[0] = False  # the election loop died: let the kubelet restart us
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 503
        assert httpx.get(f"{url}/metrics", timeout=5).status_code == 404
    finally:
        health.stop()
    with socket.socket() as again:  # kopf's liveness endpoint binds the same port next
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", health.port))
