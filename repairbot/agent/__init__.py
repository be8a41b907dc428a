"""The node agent (a DaemonSet): RepairBot's eyes on every GPU node and its hands for node-local actions."""
