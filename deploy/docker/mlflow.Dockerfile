# The MLflow tracking server and model registry: PostgreSQL for runs and the registry, an S3
# bucket (MinIO in compose.yaml) for artifacts, proxied by the server (--serve-artifacts), so
# clients need no S3 credentials.
#
#   docker build -f deploy/docker/mlflow.Dockerfile -t retain-mlflow .
#
# MLflow, psycopg and boto3 are installed at the versions of requirements.lock (the versions the
# project's client side is tested with). Everything else is configured through the environment
# at run time (`mlflow server` reads these variables):
#   MLFLOW_BACKEND_STORE_URI      postgresql+psycopg://USER:PASSWORD@HOST:5432/mlflow
#   MLFLOW_ARTIFACTS_DESTINATION  s3://BUCKET/
#   MLFLOW_S3_ENDPOINT_URL        http://minio:9000 (leave unset for AWS S3)
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION
#   MLFLOW_SERVER_ALLOWED_HOSTS   Host headers accepted (MLflow refuses other hosts than
#                                 localhost and private addresses by default)
# No secret is baked in. Base images are pinned by tag (see api.Dockerfile).

FROM python:3.11.13-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv
WORKDIR /src
COPY requirements.lock ./
# The server's packages, at the lock's versions (the lock also constrains their dependencies).
RUN grep -E '^(mlflow|mlflow-skinny|mlflow-tracing|psycopg|psycopg-binary|boto3)==' requirements.lock > server.txt \
    && test "$(grep -c '^mlflow==' server.txt)" = 1 \
    && pip install --no-cache-dir -c requirements.lock -r server.txt


FROM python:3.11.13-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="retain-mlflow" \
      org.opencontainers.image.description="MLflow tracking server for Retain (PostgreSQL backend, S3 artifacts)" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid 10001 mlflow \
    && useradd --system --uid 10001 --gid mlflow --home-dir /var/lib/mlflow --create-home --shell /usr/sbin/nologin mlflow

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MLFLOW_HOST=0.0.0.0 \
    MLFLOW_PORT=5000 \
    MLFLOW_SERVE_ARTIFACTS=true \
    MLFLOW_DISABLE_TELEMETRY=true

WORKDIR /var/lib/mlflow
USER 10001:10001
EXPOSE 5000

# /health is exempt from MLflow's Host-header check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=4)"]

CMD ["mlflow", "server"]
