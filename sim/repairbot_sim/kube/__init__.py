"""The emulated Kubernetes API server's parts (public entry: :mod:`repairbot_sim.kubeapi`).

``store`` (etcd + generic registry), ``resources`` (registry/discovery table),
``api`` (verb semantics), ``pods`` (grace, eviction, PDB status), ``selectors``,
``patching``, ``disruption``, ``validation``, ``tables`` (pure logic),
``faults`` (injection), ``watch``, ``handlers``, ``discovery`` and ``server``
(the HTTP layer).
"""
