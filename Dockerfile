# RepairBot: one image for every component. The chart picks the subcommand:
# `repairbot operator`, `repairbot agent`, `repairbot webhook`.
#
#   docker build --build-arg VERSION=0.1.0 -t repairbot:0.1.0 .
#
# Two stages: the builder turns the project and its dependencies into wheels and
# installs them, from those wheels only, into a prefix; the final image copies
# that prefix and nothing else — no compiler, no pip cache, no wheels, no source.

FROM python:3.11-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src

# Dependencies first, from pyproject.toml alone, so editing the code does not
# rebuild them. Every dependency ships manylinux wheels for CPython 3.11; a
# platform without one would need build-essential here, never in the final stage.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip wheel --wheel-dir /wheels --requirement /tmp/requirements.txt

COPY repairbot ./repairbot
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && pip install --no-index --find-links /wheels --ignore-installed --prefix /install /wheels/repairbot-*.whl


FROM python:3.11-slim-bookworm

ARG VERSION=0.1.0

LABEL org.opencontainers.image.title="repairbot" \
      org.opencontainers.image.description="Kubernetes operator, node agent and alert webhook that repair GPU nodes" \
      org.opencontainers.image.source="https://github.com/repairbot/repairbot" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

COPY --from=builder /install /usr/local

# Non-root by default: the operator and the webhook need nothing more than the
# Kubernetes API. The agent DaemonSet overrides this to root (runAsUser: 0,
# privileged, hostPID) in the chart, because it reads /dev/kmsg, opens NVML on
# the host's GPUs and runs nvidia-smi / systemctl in the host's namespaces.
# Numeric, so Kubernetes can verify runAsNonRoot.
RUN groupadd --system --gid 65532 repairbot \
    && useradd --system --uid 65532 --gid 65532 --home-dir /home/repairbot --create-home \
        --shell /usr/sbin/nologin repairbot
USER 65532:65532
WORKDIR /home/repairbot

# webhook, operator health, agent metrics, operator metrics
EXPOSE 8080 8081 9402 9403

# No HEALTHCHECK: Kubernetes probes /healthz.
ENTRYPOINT ["repairbot"]
CMD ["--help"]
