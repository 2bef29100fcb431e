# syntax=docker/dockerfile:1
# Count server image. Build from the repository root:   docker build -t count:0.2.0 .
#
# The runtime stage runs as the non-root user `count` (uid/gid 10001) and writes only to /data (the volume) and
# /tmp (prometheus-client's multiprocess files, gunicorn's worker heartbeats), so it runs unchanged with a
# read-only root filesystem, a tmpfs on /tmp and every capability dropped: see deploy/docker-compose.hardened.yml
# and deploy/kubernetes/statefulset.yaml. tests/deploy/test_dockerfile.py checks these rules.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: a virtualenv at /opt/count with Count and its dependencies --------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/count
ENV PATH=/opt/count/bin:$PATH
WORKDIR /src

# Dependencies first, from pyproject.toml alone, so a change to Count's source reuses this (large) layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --requirement /tmp/requirements.txt

# NOTE: a regular (not editable) install: everything the server reads at run time must ship in the wheel
# (migrations/*.sql as data files under share/countdb/; tests/deploy/test_dockerfile.py builds it and checks).
COPY . .
RUN pip install --no-deps . \
    && python -m compileall -q /opt/count/lib

# ---- runtime ----------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="Count" \
      org.opencontainers.image.description="Count time-series database server"

# A fixed uid/gid, so volumes, `user:` in compose files and runAsUser in Kubernetes all agree on 10001.
RUN groupadd --system --gid 10001 count \
    && useradd --system --uid 10001 --gid count --home-dir /data --no-create-home --shell /usr/sbin/nologin count \
    && mkdir -p /data \
    && chown count:count /data \
    && chmod 0750 /data

COPY --from=builder /opt/count /opt/count
# The volume is the only writable place besides /tmp, so anything written relative to the working
# directory lands there. count-server finds its gunicorn settings in the package (countdb.api.gunicorn_conf).
WORKDIR /data

# PYTHONDONTWRITEBYTECODE: the root filesystem may be read-only; the builder already compiled the bytecode.
# PROMETHEUS_MULTIPROC_DIR: gunicorn workers share metrics through files there; /tmp is writable (tmpfs).
ENV PATH=/opt/count/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BIND_ADDRESS=0.0.0.0:8080 \
    DATA_DIR=/data \
    PROMETHEUS_MULTIPROC_DIR=/tmp/count-metrics

# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
VOLUME ["/data"]
# 8080: HTTP (BIND_ADDRESS); 8815: Arrow Flight (FLIGHT_PORT)
EXPOSE 8080 8815

# The image has no curl: the check uses Python's urllib, on the port BIND_ADDRESS names. urlopen raises on any
# status other than 2xx, so an unhealthy node (503) fails the check. start-period covers WAL replay at start.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('BIND_ADDRESS', ':8080').rpartition(':')[2]; urllib.request.urlopen('http://127.0.0.1:' + port + '/health', timeout=4)"]

# SIGTERM (docker stop) drains and flushes within SHUTDOWN_GRACE_SECONDS (20 s): give `docker stop -t 30` or
# stop_grace_period: 30s (the compose files do), since Docker's default of 10 s would cut the flush short.
STOPSIGNAL SIGTERM
CMD ["count-server"]
