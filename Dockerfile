# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin exporter
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY config.example.yaml /etc/upload-status-exporter/config.example.yaml
RUN mkdir -p /var/lib/upload-status-exporter && chown 10001:10001 /var/lib/upload-status-exporter
VOLUME /var/lib/upload-status-exporter
USER 10001:10001
EXPOSE 9877
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:9877/-/healthy', timeout=2).status != 200)"
ENTRYPOINT ["upload-status-exporter"]
CMD ["--config.file=/etc/upload-status-exporter/config.yaml", "--web.listen-address=:9877", \
     "--state.file=/var/lib/upload-status-exporter/state.db"]
