"""The policy file format (apiVersion provenant.dev/v1alpha1), as pydantic models.

Only structure lives here. Cross-references (authority names), regular expressions, CEL, key
files, trust roots and SLSA/layout specs are checked by the loader, which knows the file and
the YAML line of each value. Every model forbids unknown fields: in a security policy a
misspelt key silently ignored is a rule silently dropped.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

API_VERSION = "provenant.dev/v1alpha1"

Mode = Literal["enforce", "warn", "audit"]
OnError = Literal["deny", "allow"]
ConfigAction = Literal["deny", "warn", "allow"]
# tagOnly may also resolve the tag through the registry and judge the digest it points at.
TagOnlyAction = Literal["deny", "warn", "allow", "resolve"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Metadata(_Strict):
    # DNS-1123 subdomain, as for Kubernetes object names: the name appears in decisions.
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Identity(_Strict):
    """A keyless signer: OIDC issuer and certificate SAN, each exact or by regular expression
    (policy-controller's spelling). Both are required: an issuer alone trusts everyone it
    issues tokens to."""

    issuer: str | None = None
    issuerRegExp: str | None = None
    subject: str | None = None
    subjectRegExp: str | None = None

    @model_validator(mode="after")
    def _one_of_each(self) -> Identity:
        if (self.issuer is None) == (self.issuerRegExp is None):
            raise ValueError("give exactly one of issuer or issuerRegExp")
        if (self.subject is None) == (self.subjectRegExp is None):
            raise ValueError("give exactly one of subject or subjectRegExp")
        return self


class Keyless(_Strict):
    trustRoot: str = "public-good"
    identities: list[Identity] = Field(min_length=1)
    # Fulcio certificate extensions by name (sourceRepositoryURI, buildSignerURI, ...).
    claims: dict[str, str] = Field(default_factory=dict)
    claimsRegExp: dict[str, str] = Field(default_factory=dict)
    # Stricter than ingest (which follows the bundle spec), as sigstore-python's and the gh
    # CLI's verification policies can be; each default is ingest's own rule.
    requireInclusionProof: bool = False  # refuse v0.1 bundles with only an inclusion promise
    minBundleVersion: Literal["0.1", "0.2", "0.3"] | None = None
    verifiedTimestamps: int | None = Field(default=None, ge=1, le=32)


class KeyRef(_Strict):
    file: str | None = None  # relative to the policy directory
    data: str | None = None  # inline PEM SubjectPublicKeyInfo

    @model_validator(mode="after")
    def _one_source(self) -> KeyRef:
        if (self.file is None) == (self.data is None):
            raise ValueError("give exactly one of file or data (inline PEM)")
        return self


class Authority(_Strict):
    name: str = Field(min_length=1)
    keyless: Keyless | None = None
    key: KeyRef | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Authority:
        if (self.keyless is None) == (self.key is None):
            raise ValueError("an authority is either keyless or key, exactly one of them")
        return self


class Condition(_Strict):
    expression: str = Field(min_length=1)
    message: str | None = None


class Requirement(_Strict):
    name: str | None = None
    predicateType: str | None = None  # None: any signature over the digest
    authorities: list[str] | None = None  # None: every authority of the policy
    count: int = Field(default=1, ge=1)
    slsa: dict[str, Any] | None = None
    conditions: list[Condition] = Field(default_factory=list)
    layout: dict[str, Any] | None = None
    # A verification summary from a trusted verifier (app.policy.vsa): names its own key.
    vsa: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _layout_stands_alone(self) -> Requirement:
        if self.vsa is not None:
            mixed = [
                key
                for key in ("predicateType", "authorities", "slsa", "layout")
                if getattr(self, key) is not None
            ]
            if mixed or "count" in self.model_fields_set:
                extra = [*mixed, *(["count"] if "count" in self.model_fields_set else [])]
                raise ValueError(
                    f"a vsa requirement cannot also set {', '.join(extra)} (it names its "
                    "verifier's key in vsa.publicKey and judges a VSA v1)"
                )
        # A layout names its own functionary keys and judges links, not attestations.
        if self.layout is not None:
            mixed = [
                key
                for key in ("predicateType", "authorities", "slsa", "conditions")
                if getattr(self, key)
            ]
            if mixed or "count" in self.model_fields_set:
                extra = [*mixed, *(["count"] if "count" in self.model_fields_set else [])]
                raise ValueError(f"a layout requirement cannot also set {', '.join(extra)}")
        if self.slsa is not None and self.predicateType is None:
            raise ValueError("slsa checks need a predicateType (a SLSA provenance type)")
        return self


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_SECONDS_PER = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> float:
    """Seconds from ``500ms``, ``3s``, ``30m``, ``24h``, ``7d`` (decimals allowed) or a plain
    number of seconds: the one duration syntax of policy files."""
    if isinstance(value, bool):
        raise ValueError("a duration such as 3s or 500ms")
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value))
    if match is None:
        raise ValueError(f"{value!r} is not a duration such as 3s or 500ms")
    return float(match.group(1)) * _SECONDS_PER[match.group(2) or "s"]


class RegistrySource(_Strict):
    """Opt-in network at admission: on a cold miss, read the registry beside the image's
    digest, verify and store what is there, then decide. Off by default."""

    fetchOnMiss: bool = False
    # Keep it below the webhook's timeoutSeconds: a fetch that cannot finish is an error.
    timeout: float = Field(default=3.0, gt=0, le=29)
    # kubernetes.io/dockerconfigjson Secrets (in the Pod's namespace) for this registry.
    pullSecrets: list[str] = Field(default_factory=list)

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return parse_duration(value)


class Source(_Strict):
    registry: RegistrySource | None = None


class ImagePolicySpec(_Strict):
    images: list[str] = Field(min_length=1)
    namespaces: list[str] | None = None  # None: every namespace
    mode: Mode = "enforce"
    onError: OnError = "deny"
    authorities: list[Authority] = Field(default_factory=list)
    require: list[Requirement] = Field(min_length=1)
    source: Source | None = None


class ImagePolicy(_Strict):
    apiVersion: Literal["provenant.dev/v1alpha1"]
    kind: Literal["ImagePolicy"]
    metadata: Metadata
    spec: ImagePolicySpec


class Exemption(_Strict):
    images: list[str] = Field(min_length=1)
    namespaces: list[str] | None = None
    reason: str = Field(min_length=1)  # exemptions are reviewed: say why
    # A date is inclusive (valid through that day, UTC); a timestamp is the exact instant.
    expires: date | datetime | None = None

    @field_validator("expires", mode="before")
    @classmethod
    def _instant_stays_instant(cls, value: object) -> object:
        # pydantic would read "2027-06-30T00:00:00Z" as a whole day; keep it an instant.
        if isinstance(value, str) and len(value) > len("2027-06-30"):
            return datetime.fromisoformat(value)
        return value


class BreakGlass(_Strict):
    enabled: bool = False
    namespaces: list[str] = Field(default_factory=list)


class PolicyConfigSpec(_Strict):
    noMatch: ConfigAction = "deny"
    tagOnly: TagOnlyAction = "deny"
    excludedNamespaces: list[str] = Field(default_factory=list)
    exemptions: list[Exemption] = Field(default_factory=list)
    breakGlass: BreakGlass = Field(default_factory=BreakGlass)


class PolicyConfig(_Strict):
    apiVersion: Literal["provenant.dev/v1alpha1"]
    kind: Literal["PolicyConfig"]
    metadata: Metadata | None = None
    spec: PolicyConfigSpec = Field(default_factory=PolicyConfigSpec)


# cosign's --type shorthands, so policies read like the cosign commands that produced them.
PREDICATE_TYPE_ALIASES: dict[str, str] = {
    "slsaprovenance": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance02": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance1": "https://slsa.dev/provenance/v1",
    "spdx": "https://spdx.dev/Document",
    "spdxjson": "https://spdx.dev/Document",
    "cyclonedx": "https://cyclonedx.org/bom",
    "vuln": "https://cosign.sigstore.dev/attestation/vuln/v1",
    "custom": "https://cosign.sigstore.dev/attestation/v1",
}
