# The kubatch operator image: `python -m kubatch` (the operator), as a non-root user.
#   docker build -t <registry>/kubatch:0.1.0 .
# The Helm chart runs it with a read-only root filesystem, all capabilities dropped, uid 10001.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 kubatch \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin kubatch

WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip install . \
 && rm -rf /src

WORKDIR /
USER 10001:10001
# 8080: /metrics /healthz /readyz; 8081: kopf liveness; 9443: validating webhook.
EXPOSE 8080 8081 9443
ENTRYPOINT ["python", "-m", "kubatch"]
