# syntax=docker/dockerfile:1
# One image for every Switchboard service; the argument picks the service:
#   docker build -t switchboard:dev .
#   docker run --rm switchboard:dev order_svc      # = python -m order_svc
# The final stage has no compiler, runs as an unprivileged user and never
# writes outside /tmp, so it runs with readOnlyRootFilesystem.

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: wheels for the project and every dependency, then a venv ---------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# A compiler only for a dependency that ships no wheel for this platform.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml ./
COPY mesh ./mesh
COPY gen ./gen
COPY chat_svc ./chat_svc
COPY session_svc ./session_svc
COPY registration_svc ./registration_svc
COPY scheduler_svc ./scheduler_svc
COPY order_svc ./order_svc
COPY activity_svc ./activity_svc
RUN pip wheel --wheel-dir /wheels . \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-index --find-links /wheels switchboard \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib

# --- run ---------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="switchboard" \
      org.opencontainers.image.description="Switchboard gRPC services (python -m <service>)"
RUN groupadd --system --gid 10001 switchboard \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin switchboard
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TMPDIR=/tmp \
    GRPC_PORT=50051 \
    METRICS_PORT=9100
WORKDIR /tmp
USER 10001:10001
EXPOSE 50051 9100
# The service handles SIGTERM itself (graceful drain of SHUTDOWN_GRACE_S).
ENTRYPOINT ["python", "-m"]
CMD ["order_svc"]
