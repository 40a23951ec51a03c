# The Kitaru server image: the HTTP API and the web UI (FastAPI + uvicorn) on PostgreSQL.
# Build from the repository root:
#   docker build -f deploy/docker/server.Dockerfile -t REGISTRY/kitaru-server:0.1.0 .
# Configuration by environment: KITARU_SERVER_DATABASE_URL (postgresql+psycopg://...), KITARU_SERVER_AUTH (1).
# The Helm chart runs the migrations first with the same image (see deploy/helm/kitaru).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 KITARU_SERVER_AUTH=1
WORKDIR /opt/kitaru
COPY pyproject.toml constraints.txt README.md ./
COPY kitaru ./kitaru
COPY server ./server
RUN pip install -c constraints.txt ".[server,kuberay,s3,gcs,azure]"

RUN useradd --create-home --uid 1000 kitaru
USER kitaru
EXPOSE 8383
CMD ["python", "-m", "uvicorn", "--factory", "kitaru_server.api:app_from_environment", "--host", "0.0.0.0", "--port", "8383", \
     "--no-access-log", "--timeout-graceful-shutdown", "5"]
