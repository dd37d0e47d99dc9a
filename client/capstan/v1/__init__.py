"""Generated protobuf and gRPC stubs for capstan.v1 (scripts/gen_protos.py; do not edit)."""
