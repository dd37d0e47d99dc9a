"""kubesim: a Kubernetes API server simulator for tests and first runs."""
