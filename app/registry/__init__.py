"""Registries: read the signatures and attestations already stored beside images, verify them
through the one ingest path, and keep where each came from."""
