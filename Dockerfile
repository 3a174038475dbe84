# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="upload-status-exporter" \
      org.opencontainers.image.description="Prometheus exporter for upload-task status APIs (Yandex Direct, ipernity, encoding.com, Alibaba Cloud VOD)" \
      org.opencontainers.image.source="https://github.com/upload-status-exporter/upload-status-exporter" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin exporter
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY config.example.yaml /etc/upload-status-exporter/config.example.yaml
RUN mkdir -p /var/lib/upload-status-exporter && chown 10001:10001 /var/lib/upload-status-exporter
VOLUME /var/lib/upload-status-exporter
USER 10001:10001
# The listen address and web config (TLS, basic auth) come from the environment, so the
# health check probes what the server serves: `docker run -e UPLOAD_EXPORTER_LISTEN_ADDRESS=:9100`
# or `-e UPLOAD_EXPORTER_WEB_CONFIG_FILE=/etc/upload-status-exporter/web.yml` changes both.
ENV UPLOAD_EXPORTER_LISTEN_ADDRESS=:9877
EXPOSE 9877
HEALTHCHECK --interval=30s --timeout=10s CMD ["upload-status-exporter", "--healthcheck"]
ENTRYPOINT ["upload-status-exporter"]
CMD ["--config.file=/etc/upload-status-exporter/config.yaml", "--state.file=/var/lib/upload-status-exporter/state.db"]
