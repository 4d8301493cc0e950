# The memscope image: by default `memscope serve` (REST API, MCP over HTTP, the memory browser) on
# port 8420; the same image runs a Celery worker, Celery beat or Flower (see docker-compose.yml).
# Build: docker build -t memscope .
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
# Celery + Redis, Flower (the monitoring UI of the compose file) and the server; versions from constraints.txt.
RUN pip install -c constraints.txt ".[all]"

RUN useradd --create-home --uid 1000 memscope && mkdir -p /data && chown memscope /data
USER memscope
VOLUME ["/data"]

ENV MEMSCOPE_CONFIG=/app/configs/distributed.yaml
# API keys: server.keys in the config (sha256 hashes) or MEMSCOPE_API_KEYS="tenant=KEY,admin=KEY".
EXPOSE 8420
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:8420/healthz', timeout=4)" || exit 1
CMD ["memscope", "serve", "--host", "0.0.0.0", "--port", "8420"]
