"""API tokens with scopes."""
