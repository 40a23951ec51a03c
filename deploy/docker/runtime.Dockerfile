# The Kitaru runtime image: Ray 2.60 + Kitaru, for the kuberay, vertex and sagemaker backends.
# Build from the repository root:
#   docker build -f deploy/docker/runtime.Dockerfile -t REGISTRY/kitaru-runtime:0.1.0 .
# A flow's own image (`kitaru build`) starts FROM this one and adds the flow's requirements.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 RAY_USAGE_STATS_ENABLED=0
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/kitaru
COPY pyproject.toml constraints.txt README.md ./
COPY kitaru ./kitaru
COPY server ./server
# boto3 and google-cloud-secret-manager: the launcher reads a job's API key from its secret store (api_key_secret).
RUN pip install -c constraints.txt ".[s3,gcs,azure]" boto3 google-cloud-secret-manager

RUN useradd --create-home --uid 1000 ray
USER ray
WORKDIR /home/ray
# KubeRay starts Ray itself and submits the driver; Vertex AI and SageMaker run the cluster launcher,
# which reads CLUSTER_SPEC or resourceconfig.json and runs the driver on the head.
ENTRYPOINT ["tini", "--"]
CMD ["python", "-m", "kitaru.runtime.launch"]
