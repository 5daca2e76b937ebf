# syntax=docker/dockerfile:1
# One Dockerfile for the platform services. Targets: ingest, analytics, api.
#   docker build --target api -t deltasense-api .
# docker-compose.yml builds each target and runs `python -m <service>`.

# --- vendor: the console's third-party code (Leaflet, markercluster, uPlot) and the API explorers (Swagger UI, ReDoc) from npm ---
# The runtime npm dependencies only (the MicroPython interpreter is a dev one).
FROM node:20-slim AS vendor
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund
COPY scripts/vendor_console.sh scripts/
RUN sh scripts/vendor_console.sh

# --- build: install the project and its runtime dependencies into a venv ---------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY . .
# The console's vendored files are package data of `api` (git-ignored, so not in
# the context): from the vendor stage, before the install picks them up.
COPY --from=vendor /src/api/static/vendor api/static/vendor
# Runtime dependencies only: no [dev] extra.
RUN pip install .

# --- runtime: the venv, no sources, no build tools, a non-root user --------------
FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    DELTASENSE_VAR_DIR=/var/lib/deltasense
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/deltasense \
        --shell /usr/sbin/nologin deltasense \
    && mkdir -p /var/lib/deltasense \
    && chown deltasense:deltasense /var/lib/deltasense
COPY --from=build /opt/venv /opt/venv
WORKDIR /var/lib/deltasense
USER deltasense

FROM runtime AS ingest
CMD ["python", "-m", "ingest"]

FROM runtime AS analytics
CMD ["python", "-m", "analytics"]

FROM runtime AS api
COPY docker/api_healthcheck.py /opt/deltasense/api_healthcheck.py
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/opt/deltasense/api_healthcheck.py"]
CMD ["python", "-m", "api"]
