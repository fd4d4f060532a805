"""Continuous validation: what runs in the cluster now, re-judged whenever anything it depends on
changes (policies, trust roots, attestations, exemptions, the clock).

The inventory is read from the Kubernetes API (``kube``, ``inventory``); evaluation is the
admission engine's (``evaluate``); findings and their transitions are stored, audited and
announced (``findings``, ``notify``); ``runner`` ties them together, behind a Lease when several
replicas run it (``leader``). Imports domain packages below it; none of them imports this one:
the hooks they fire (policy reloads, revocations) are registered from ``app.main``.
"""
