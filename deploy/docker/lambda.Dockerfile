# AWS Lambda container image for the Kinesis handler retain.streaming.lambda_handler.handler.
#
#   docker build -f deploy/docker/lambda.Dockerfile -t retain-lambda .
#
# Why not public.ecr.aws/lambda/python:3.11: that image is Amazon Linux 2 (glibc 2.26), and the
# locked numpy 2.4, scipy 1.17, pyarrow 25, LightGBM 4.7 and xgboost-cpu 3.2 publish Linux wheels
# for glibc 2.28 and newer only (manylinux_2_28), so requirements.lock cannot be installed on it
# (pip would build them from source, and models pickled with these versions must be loaded with
# them). The supported alternative is used instead: the same Debian Python image as the other
# images plus the AWS Lambda Runtime Interface Client (awslambdaric) as the entry point. Lambda
# runs it like any other image; the deployment (event source mapping with
# FunctionResponseTypes=["ReportBatchItemFailures"], environment, role) is described in
# docs/kinesis.md.
#
# At run time, set in the function's configuration, never in the image:
#   RETAIN_DATABASE_URL, RETAIN_TRACKING_URI, RETAIN_ID_KEY, RETAIN_ROSTER_KEY,
#   RETAIN_ENVIRONMENT=production, and optionally RETAIN_STREAM_OUTPUT_URL and
#   RETAIN_STREAM_DEAD_LETTER_URL (read by the handler).
# Lambda's file system is read-only except /tmp, hence HOME and RETAIN_HOME there.
# Base images are pinned by tag (see api.Dockerfile).

FROM python:3.11.13-slim-bookworm AS builder

ARG AWSLAMBDARIC_VERSION=4.2.2
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv
WORKDIR /src

COPY pyproject.toml README.md LICENSE requirements.lock ./
RUN mkdir -p src/retain \
    && touch src/retain/__init__.py \
    && pip install --no-cache-dir -c requirements.lock . "awslambdaric==${AWSLAMBDARIC_VERSION}" \
    && pip uninstall --yes retain

COPY src ./src
RUN pip install --no-cache-dir --no-deps .


FROM python:3.11.13-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="retain-lambda" \
      org.opencontainers.image.description="Retain Kinesis handler for AWS Lambda" \
      org.opencontainers.image.licenses="Apache-2.0"

# libgomp1: LightGBM's OpenMP runtime (its wheel does not bundle one).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1=12.2.0-14+deb12u1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 retain \
    && useradd --system --uid 10001 --gid retain --no-create-home --shell /usr/sbin/nologin retain

COPY --from=builder /opt/venv /opt/venv
COPY configs /app/configs
COPY LICENSE /app/LICENSE

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    NUMBA_CACHE_DIR=/tmp/numba \
    RETAIN_HOME=/tmp/retain \
    RETAIN_SPEC_DIR=/app/configs/datasets \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=1

WORKDIR /app
# Lambda runs functions as its own unprivileged user; this keeps local runs unprivileged too.
USER 10001:10001

# Lambda does not run Docker healthchecks; it calls the handler. (Test the image locally with
# the Lambda Runtime Interface Emulator, see deploy/docker/README.md.)
HEALTHCHECK NONE

ENTRYPOINT ["/opt/venv/bin/python", "-m", "awslambdaric"]
CMD ["retain.streaming.lambda_handler.handler"]
