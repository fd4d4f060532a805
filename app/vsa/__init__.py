"""Verification Summary Attestations (VSA v1): Provenant signs what it verified.

Issuing: ``GET /v1/artifacts/{digest}/vsa`` evaluates the artifact under one ImagePolicy with
the policy engine admission uses and signs the verdict with the VSA key (``keys``), as a DSSE
envelope or a key-signed Sigstore bundle. Checking: ``provenant vsa verify`` applies
slsa-verifier ``verify-vsa``'s rules offline (``offline``). Accepting VSAs as evidence is the
policy package's ``vsa:`` requirement (``app.policy.vsa``): this package is not on the
admission path.
"""
