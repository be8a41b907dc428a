# RepairBot — every target sets itself up: a fresh clone needs only Python >= 3.11 and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test lint demo sandbox sandbox-rbac simulate bench bench-quick system-deps clean gpu-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The product and, beside it, the simulated world it is tested and demonstrated in (sim/: its own
# distribution, so the product and its image carry none of it).
$(STAMP): pyproject.toml sim/pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]' -e ./sim
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check repairbot sim tests benchmarks tools
	$(BIN)/mypy repairbot sim/repairbot_sim sim/repairbot_fleetsim tools

# The NVML path against the real GPU (read-only; under 5 minutes): writes docs/validation/gpu-check-YYYY-MM-DD.md.
# Without an NVIDIA GPU and driver it says so in one line, writes nothing and exits 2 (docs/validation/README.md).
gpu-check: $(STAMP)
	$(BIN)/python tools/gpu_check.py

demo: $(STAMP)
	$(BIN)/repairbot demo

# Benchmarks write JSON to benchmarks/results/ and print a table; bench-quick is the small run CI keeps working.
bench: $(STAMP)
	$(BIN)/python benchmarks/agent_bench.py
	$(BIN)/python benchmarks/mtta_bench.py
	$(BIN)/python benchmarks/operator_bench.py
	$(BIN)/python benchmarks/burst_bench.py
	$(BIN)/python benchmarks/scale_bench.py
	$(BIN)/python benchmarks/webhook_bench.py
	$(BIN)/python benchmarks/apiserver_bench.py

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/agent_bench.py --quick
	$(BIN)/python benchmarks/mtta_bench.py --quick
	$(BIN)/python benchmarks/operator_bench.py --quick
	$(BIN)/python benchmarks/burst_bench.py --quick
	$(BIN)/python benchmarks/scale_bench.py --quick
	$(BIN)/python benchmarks/webhook_bench.py --quick
	$(BIN)/python benchmarks/apiserver_bench.py --quick

# Debian's real Prometheus, promtool and Alertmanager, faketime, and Slurm (slurmctld, slurmd, munge), for the tests that run them (they skip cleanly where absent).
system-deps:
	@if command -v prometheus >/dev/null && command -v promtool >/dev/null \
		&& { command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null; }; then \
		echo "prometheus, promtool, alertmanager: present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus prometheus-alertmanager >/dev/null \
		&& echo "prometheus, promtool, alertmanager: installed from Debian"; \
	else echo "prometheus/alertmanager not installed (needs root and apt-get): their tests will skip"; fi
	@if command -v faketime >/dev/null; then echo "faketime: present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null \
		&& echo "faketime: installed from Debian"; \
	else echo "faketime not installed (needs root and apt-get): the clock-skew replica test will skip"; fi
	@if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v scontrol >/dev/null \
		&& command -v munged >/dev/null; then echo "slurmctld, slurmd, scontrol, munged: present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null \
		&& echo "slurmctld, slurmd, scontrol, munged: installed from Debian"; \
	else echo "slurm/munge not installed (needs root and apt-get): the Slurm tests will skip"; fi

# The 54-day fleet simulation: report.md, report.png and results.json in benchmarks/results/fleetsim/.
simulate: $(STAMP)
	$(BIN)/repairbot simulate

sandbox: $(STAMP)
	$(BIN)/repairbot sandbox --state-dir rb-state

clean:
	rm -rf $(VENV) rb-state .pytest_cache .mypy_cache .ruff_cache

# The chart's RBAC as the sandbox installs it (sim/repairbot_sim/data/sandbox-rbac.yaml); a chart test fails while it is stale.
sandbox-rbac: $(STAMP)
	PYTHONPATH=$(CURDIR) $(BIN)/python -m tests.chart.write_sandbox_rbac
