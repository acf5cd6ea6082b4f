"""The live dashboard and the Prometheus /metrics endpoint."""
