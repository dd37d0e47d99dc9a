"""Capstan client side: generated stubs (capstan.v1), client library and CLI."""
