# syntax=docker/dockerfile:1
# One image for every FileRelay process (docs/architecture.md#processes); the command picks the process:
#   api (the default), worker --queues s3 | sharepoint | folder, sweeper, migrate, config apply FILE,
#   keys …, certs …, up.
# Build from the repository root:  docker build -t filerelay:0.1.0 .
# No secret is baked in: every password, key and URL with credentials comes from the environment at run time
# (docker-compose.yml reads them from .env, Kubernetes from the Secrets in k8s/secret.example.yaml).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/filerelay
WORKDIR /src
# Dependencies first, in their own layer, so a source change does not reinstall them; at the versions
# requirements.lock pins (scripts/lock.sh), so an image built later gets the same packages.
COPY pyproject.toml README.md requirements.lock ./
RUN python -c "import tomllib as t; print(*t.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
        > /tmp/requirements.txt \
    && /opt/filerelay/bin/pip install -r /tmp/requirements.txt -c requirements.lock
COPY services ./services
COPY shared ./shared
RUN /opt/filerelay/bin/pip install --no-deps .

FROM python:3.11-slim
ENV PATH=/opt/filerelay/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FILERELAY_HOME=/var/lib/filerelay \
    HOME=/var/lib/filerelay
# A fixed, non-root UID/GID 10001: Kubernetes' runAsUser/fsGroup (k8s/) and volume ownership rely on it.
# FILERELAY_HOME (embedded defaults, the API's metrics folder) and /srv/filerelay (the mount point for
# folder destinations) belong to that user, so a fresh named volume mounted on either is writable too.
RUN groupadd --system --gid 10001 filerelay \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/filerelay --no-create-home \
        --shell /usr/sbin/nologin filerelay \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/filerelay /srv/filerelay
COPY --from=build /opt/filerelay /opt/filerelay
USER 10001:10001
WORKDIR /var/lib/filerelay
EXPOSE 8080
ENTRYPOINT ["filerelay"]
CMD ["api"]
