"""Capstan server: gRPC services, REST gateway, registry and helm drivers."""
