# The image of the Kubernetes work pool: the worker (k8s/worker/worker.yaml) and every flow-run Job
# (k8s/worker/base-job-template.json) run it. It holds this checkout at /opt/framework2, where the
# deployments' pull step looks (FRAMEWORK2_PROJECT_DIR in prefect.yaml), framework2[kubernetes] in a virtual
# environment on PATH, Debian's Chromium and axe-core for PUXT's accessibility scans, and runs as uid 10001
# (the manifests' runAsUser).
#
#   docker build -t REGISTRY/framework2:TAG .   &&   docker push REGISTRY/framework2:TAG
#   framework2 init --pool kubernetes --image REGISTRY/framework2:TAG
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    VIRTUAL_ENV=/opt/framework2/.venv \
    PATH=/opt/framework2/.venv/bin:$PATH \
    HOME=/home/framework2

# Chromium from Debian, never a browser download; npm only to fetch axe-core below, then removed.
RUN apt-get update \
    && apt-get install -y --no-install-recommends chromium fonts-dejavu-core npm \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/framework2
# Dependencies first, so a code change does not re-install them.
COPY pyproject.toml README.md ./
RUN python -m venv .venv \
    && mkdir -p framework2 && touch framework2/__init__.py \
    && pip install '.[kubernetes]' \
    && pip uninstall -y framework2
COPY . .
RUN pip install --no-deps '.[kubernetes]' \
    && bash scripts/ensure-chromium.sh \
    && apt-get purge -y npm && apt-get autoremove -y && rm -rf /var/lib/apt/lists/* /root/.npm \
    && useradd --uid 10001 --user-group --create-home --home-dir /home/framework2 framework2

USER 10001
CMD ["prefect", "worker", "start", "--pool", "framework2-kubernetes", "--type", "kubernetes"]
