"""Policies and everything they trust, loaded from PROVENANT_POLICY_DIR."""
