# One image for every eksops process: worker (default), gateway and Flower.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 eksops
WORKDIR /app

COPY pyproject.toml README.md celeryconfig.py ./
COPY worker ./worker
COPY producer ./producer
COPY kubesim ./kubesim
COPY devstack ./devstack
RUN pip install .

USER eksops
# Warm shutdown on SIGTERM: running tasks finish; unfinished ones are redelivered.
STOPSIGNAL SIGTERM
CMD ["celery", "-A", "worker", "worker", "--hostname", "worker@%h", "--loglevel", "INFO"]
