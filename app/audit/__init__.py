"""Append-only event log: uploads (accepted and rejected), decisions, token changes."""
