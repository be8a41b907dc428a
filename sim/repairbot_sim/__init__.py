"""The embedded world RepairBot runs against in the demo, the tests and the benchmarks.

Nothing here is imported by product code: the sandbox plugs in only through the
interfaces real backends implement (a Kubernetes API over HTTP, a GpuBackend,
a sysfs tree, a kernel-log file).
"""
