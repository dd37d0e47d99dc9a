"""The `capstan` command line: climc's `k8s-*` commands, flags and help texts over gRPC.

Entry point `capstan.cli.main:main`. It talks to the server only through `capstan.client`.
"""
