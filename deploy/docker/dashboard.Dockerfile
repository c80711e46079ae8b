# The educator dashboard (Streamlit); it works through the API with the user's key.
#
#   docker build -f deploy/docker/dashboard.Dockerfile -t retain-dashboard .
#
# The command is `retain dashboard`'s own Streamlit command line with one difference: the
# server listens on 0.0.0.0, because `retain dashboard` binds 127.0.0.1, which cannot be reached
# from outside a container (a test keeps the other flags in step with retain.cli). Once the CLI
# has a bind-address setting this becomes `CMD ["retain", "dashboard"]`.
#
# The dashboard holds no secrets (it signs in with the user's API key and never reads the id or
# roster keys). EXTRAS (default empty) and base-image pinning are as in api.Dockerfile.

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

LABEL org.opencontainers.image.title="retain-dashboard" \
      org.opencontainers.image.description="Retain educator dashboard (Streamlit)" \
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
    RETAIN_DASHBOARD_PORT=8501 \
    RETAIN_DASHBOARD_API_URL=http://api:8000 \
    MLFLOW_DISABLE_TELEMETRY=true \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1

WORKDIR /app
USER 10001:10001
EXPOSE 8501

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"]

CMD ["python", "-m", "streamlit", "run", "/opt/venv/lib/python3.11/site-packages/retain/dashboard/app.py", \
     "--server.port", "8501", "--server.address", "0.0.0.0", "--server.headless", "true", \
     "--browser.gatherUsageStats", "false", "--global.developmentMode", "false", \
     "--client.toolbarMode", "viewer"]
