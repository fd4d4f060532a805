"""Kubernetes admission: AdmissionReview decisions from the verified index."""
