"""Ingest of signed provenance, storage by artifact digest, and queries."""
