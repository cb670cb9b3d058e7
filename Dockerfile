# The dashboard in a container: docker build -t imdb-rnn . && docker run -p 8501:8501 imdb-rnn
# It starts read-only (anyone can classify and look); to change things, give it an admin password:
# docker run -e IMDB_ADMIN_PASSWORD=... -p 8501:8501 imdb-rnn, or mount a secrets.toml holding admin_password at
# /app/.streamlit/secrets.toml.
# The HTTP API instead (the Open Inference Protocol, MLServer; no TensorFlow, no Streamlit):
# docker build --target api -t imdb-rnn-api . && docker run -p 8080:8080 imdb-rnn-api
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

WORKDIR /app

# A non-root user; the dashboard's owns /data (runs and the tokenized-data cache).
RUN groupadd --gid 10001 app \
    && useradd --create-home --uid 10001 --gid 10001 app \
    && mkdir -p /data/runs /data/cache \
    && chown -R 10001:10001 /data

FROM base AS api

COPY requirements-serve.txt .
RUN pip install --no-cache-dir -r requirements-serve.txt
COPY core/ core/
COPY models/ models/

USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/v2/health/ready', timeout=4).status != 200)"]
# All interfaces inside the container, as a published port needs; the API bounds every request (core/serving).
CMD ["python", "-m", "core", "serve", "models/imdb_simplernn.onnx", "--host", "0.0.0.0", "--port", "8080"]

FROM base AS dashboard

ENV IMDB_RUNS=/data/runs \
    IMDB_CACHE=/data/cache \
    TF_CPP_MIN_LOG_LEVEL=2 \
    IMDB_READ_ONLY=1

# Dependencies first, so code changes do not reinstall TensorFlow.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY .streamlit/ .streamlit/
COPY core/ core/
COPY dashboard/ dashboard/
COPY models/ models/

USER 10001:10001
VOLUME ["/data"]
EXPOSE 8501

# The slim image has no curl: ask Streamlit's health endpoint with Python's own HTTP client.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).status != 200)"]

# All interfaces inside the container, as a published port needs; IMDB_READ_ONLY above guards the writes.
CMD ["streamlit", "run", "dashboard/app.py", "--server.port=8501", "--server.address=0.0.0.0"]
