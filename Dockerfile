# The memscope image of the distributed mode: a Celery worker, Celery beat or Flower (see
# docker-compose.yml). Build: docker build -t memscope .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    MEMSCOPE_HOME=/data

WORKDIR /app

COPY pyproject.toml constraints.txt README.md ./
COPY memscope ./memscope
COPY workers ./workers
COPY operations ./operations
COPY configs ./configs
# The local all-MiniLM-L6-v2 embedder is built in (no torch); all: every provider SDK, Elasticsearch,
# Celery + Redis and Flower, the monitoring UI of the compose file; versions from constraints.txt.
RUN pip install -c constraints.txt ".[all]"

RUN useradd --create-home --uid 1000 memscope && mkdir -p /data && chown memscope /data
USER memscope
VOLUME ["/data"]

ENV MEMSCOPE_CONFIG=/app/configs/distributed.yaml
CMD ["memscope", "worker"]
