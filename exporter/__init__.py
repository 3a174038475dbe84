"""upload-status-exporter: Prometheus exporter for upload-task status APIs."""

__version__ = "0.1.0"
