"""Provenant: software supply-chain attestation service."""

__version__ = "0.1.0"
