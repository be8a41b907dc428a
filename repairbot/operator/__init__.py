"""The operator: kopf handlers and API writes around the pure state machine in :mod:`repairbot.machine`."""
