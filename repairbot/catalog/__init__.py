"""What NVIDIA's error codes mean and what RepairBot does about each.

- :mod:`repairbot.catalog.xid`: GPU Xids (NVIDIA's resolution buckets, the NVLink5 and Xid 154
  messages read where the code alone cannot say) and the policy file's per-code overrides;
- :mod:`repairbot.catalog.sxid`: NVSwitch SXids, Fatal or Non-fatal;
- :mod:`repairbot.catalog.xid_table`: the one table from a bucket, or an NVSentinel action, to
  our response (action, severity, ladder);
- :mod:`repairbot.catalog.codes`: the code-to-entry container both catalogs are;
- :mod:`repairbot.catalog.deferral`: which findings may wait for the next convenient reset
  (Xid 63 and 156, a pending row remap) instead of evicting running work.

The facts live in ``repairbot/data/xid_catalog.yaml`` and ``sxid_catalog.yaml``. The package
imports nothing of ours but :mod:`repairbot.model`: detectors, policy, operator and the
notifiers all share one catalog object.
"""
