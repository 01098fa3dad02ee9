# One image for every eksops process: worker (default), gateway and Flower.
# Dependencies come from uv.lock (hashes checked), the versions CI tested.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1 \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PATH=/app/.venv/bin:$PATH

RUN useradd --create-home --uid 10001 eksops
WORKDIR /app

COPY requirements/uv.txt requirements/uv.txt
RUN pip install --require-hashes -r requirements/uv.txt

# The locked dependencies first (a layer that changes only with uv.lock), then eksops.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-install-project
COPY celeryconfig.py ./
COPY worker ./worker
COPY producer ./producer
COPY kubesim ./kubesim
COPY devstack ./devstack
RUN uv sync --frozen --no-editable
# Flower's persistent state (docker-compose.yml mounts a volume here).
RUN mkdir -p /var/lib/flower && chown eksops /var/lib/flower

USER eksops
# Warm shutdown on SIGTERM: running tasks finish; unfinished ones are redelivered.
STOPSIGNAL SIGTERM
CMD ["celery", "-A", "worker", "worker", "--hostname", "worker@%h", "--loglevel", "INFO"]
