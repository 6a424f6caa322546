"""Observability: Prometheus started on loopback (`prometheus`), its file_sd targets kept
current as function processes come and go (`scraping`), and the runtime's own metrics
(`runtime_metrics`), served by the API server at /metrics."""
