# The prediction API (`retain serve`, FastAPI under uvicorn).
#
#   docker build -f deploy/docker/api.Dockerfile -t retain-api .
#   docker build -f deploy/docker/api.Dockerfile --build-arg EXTRAS=vision -t retain-api:vision .
#
# The same image runs the one-shot jobs and the flows in compose.yaml (`retain demo`,
# `retain flows serve`, ...): every command of the package is in it.
#
# EXTRAS is empty by default: the `vision` extra brings torch (about a gigabyte more) and the
# API does not need it. With EXTRAS=vision, torch==TORCH_VERSION is installed first; PyPI's
# Linux torch is the CUDA build, so pass PIP_EXTRA_INDEX_URL=<PyTorch's CPU wheel index> for the
# CPU build (see deploy/docker/README.md).
#
# Base images are pinned by tag, not digest: no registry can be reached where this file was
# written, and an unverified digest is worse than none. Builder and runtime must use the same
# image (the virtual environment links to its interpreter).

FROM python:3.11.13-slim-bookworm AS builder

ARG EXTRAS=""
ARG TORCH_VERSION=2.13.0
ARG PIP_EXTRA_INDEX_URL=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL} \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv
WORKDIR /src

# Dependencies first, in their own layer (a change to src/ does not reinstall them): the
# package is installed from a stub, then replaced by the real source below.
COPY pyproject.toml README.md LICENSE requirements.lock ./
RUN mkdir -p src/retain \
    && touch src/retain/__init__.py \
    && case ",${EXTRAS}," in \
         *,vision,*) pip install --no-cache-dir -c requirements.lock "torch==${TORCH_VERSION}" ;; \
       esac \
    && pip install --no-cache-dir -c requirements.lock ".${EXTRAS:+[${EXTRAS}]}" \
    && pip uninstall --yes retain

COPY src ./src
RUN pip install --no-cache-dir --no-deps .


FROM python:3.11.13-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="retain-api" \
      org.opencontainers.image.description="Retain prediction API (retain serve)" \
      org.opencontainers.image.licenses="Apache-2.0"

# libgomp1: LightGBM's OpenMP runtime (its wheel does not bundle one).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1=12.2.0-14+deb12u1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 retain \
    && useradd --system --uid 10001 --gid retain --home-dir /var/lib/retain --shell /usr/sbin/nologin retain \
    && mkdir -p /var/lib/retain /data \
    && chown retain:retain /var/lib/retain /data

COPY --from=builder /opt/venv /opt/venv
# Dataset specs and tuned parameters (RETAIN_SPEC_DIR; params.yaml sits beside datasets/).
COPY configs /app/configs
COPY LICENSE /app/LICENSE

# No secrets here: RETAIN_ID_KEY, RETAIN_ROSTER_KEY and the database URL come from the runtime
# environment (compose.yaml reads them from .env).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/var/lib/retain \
    RETAIN_HOME=/var/lib/retain \
    RETAIN_DATA_DIR=/data \
    RETAIN_SPEC_DIR=/app/configs/datasets \
    RETAIN_API_HOST=0.0.0.0 \
    RETAIN_API_PORT=8000 \
    MLFLOW_DISABLE_TELEMETRY=true \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1

WORKDIR /app
USER 10001:10001
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["retain", "serve"]
