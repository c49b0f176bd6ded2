# motcua: one image for every service; MOTCUA_SERVICE (or the container's args) chooses which one runs.
#   docker build -t motcua:dev .
#   docker run --rm -e MOTCUA_SERVICE=dossier -e DOSSIER_DATABASE_URL=postgresql://... \
#     -e OIDC_ISSUER=https://id.../realms/... -e OIDC_JWKS_URL=https://id.../certs -p 8000:8000 motcua:dev
# Without an identity provider (OIDC_*) the service refuses to start, unless MOTCUA_ENV=development.
# Kubernetes runs `python -m shared.migrate <service>` in an initContainer and
# `python -m shared.runner <service>` in the main container (deploy/k8s/base).
# The newest Python motcua supports (3.11 to 3.13; CI tests both ends), the one Debian 13 ships. Every
# pin of requirements.lock has a CPython 3.13 manylinux wheel or is pure Python (checked with
# `pip download --only-binary=:all: --python-version 3.13`), so the slim image needs no compiler.
# By tag, not yet by digest: the digest of python:3.13-slim can only be read from the registry
# (`docker buildx imagetools inspect python:3.13-slim`), which the machines this was written on cannot
# reach. A release pins it — FROM python:3.13-slim@sha256:<digest> — and a bot (Renovate, Dependabot)
# moves the digest with the security updates of the base image.
FROM python:3.13-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONWARNINGS="ignore::DeprecationWarning,ignore:pkg_resources is deprecated:UserWarning"

WORKDIR /app

# Dependencies first, so a code change does not reinstall them: the runtime lock, every file checked
# against its hash. Every pin is a manylinux wheel for CPython 3.13 (psycopg2-binary included) or pure
# Python (psycogreen's sdist): no compiler needed.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock

COPY pyproject.toml ./
COPY shared/ shared/
COPY services/ services/
COPY scripts/ scripts/

# Byte-compile now: at run time the root filesystem is read-only (PYTHONDONTWRITEBYTECODE above).
RUN python -m compileall -q shared services scripts \
    && groupadd --system --gid 10001 motcua \
    && useradd --system --uid 10001 --gid motcua --home-dir /tmp --no-create-home --shell /usr/sbin/nologin motcua

# Numeric, so Kubernetes can verify runAsNonRoot without a runAsUser of its own.
USER 10001:10001

# dossier 8000, postal 8001, esign 8002, metrics 8003 (docs/contracts.md §2 HTTP APIs).
EXPOSE 8000 8001 8002 8003

CMD ["sh", "-c", "exec python -m shared.runner \"${MOTCUA_SERVICE:?set MOTCUA_SERVICE to dossier, postal, esign or metrics}\""]
