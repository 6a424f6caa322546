"""Monitoring against a real Prometheus scraping a real predictor."""
