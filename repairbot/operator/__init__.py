"""The operator: kopf handlers around a pure state machine (``machine.decide``) and its safety blockers."""
