"""The ``vsa:`` requirement: admit an image on a verification summary (VSA v1) from a trusted
verifier, another Provenant included, instead of judging its provenance here.

The VSA's signature was verified once, at ingest, by the DSSE-with-keys path (the verifier's
public key must be under ``keys/``); the engine matches the signer against ``publicKey`` like any
key authority. What remains, at decision time, is the part of ``slsa-verifier verify-vsa`` that
reads the Statement (verifier id, resource URI, verified levels, result PASSED: delegated to
``app.policy.slsa`` so both spellings judge alike) plus two checks slsa-verifier leaves to its
caller: the policy the verifier applied (``policyDigest``, ``policyUri``) and freshness
(``maxAge`` against ``timeVerified``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.policy.results import CheckResult
from app.policy.schema import parse_duration
from app.policy.slsa import VSA_V1, SlsaRequirement, check_slsa

SPEC_KEYS = frozenset(
    {"verifierId", "publicKey", "minLevel", "resourceUri", "maxAge", "policyDigest", "policyUri"}
)
# A verifier's clock may run a little ahead of ours; more than this is not skew.
CLOCK_SKEW = timedelta(minutes=5)
_DIGEST = re.compile(r"^(sha256|sha384|sha512):([0-9a-f]+)$")
_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_PLACEHOLDERS = re.compile(r"\{([a-z]*)\}")


@dataclass(frozen=True)
class VsaRequirement:
    verifier_id: str
    resource_uri: str  # may name {name} and {digest} of the image being judged
    min_level: str  # SLSA_<TRACK>_LEVEL_<N> (that level or higher), or a custom level exactly
    max_age: timedelta | None = None
    policy_digest: tuple[str, str] | None = None  # (algorithm, hex)
    policy_uri: str | None = None

    def resource_for(self, image_name: str | None, digest: str) -> str | None:
        """The resource URI expected for this image; None when it needs a name and has none."""
        if "{name}" in self.resource_uri and not image_name:
            return None
        return self.resource_uri.replace("{name}", image_name or "").replace("{digest}", digest)


def parse_vsa_requirement(spec: Mapping[str, Any]) -> VsaRequirement:
    """The YAML ``vsa:`` mapping (``publicKey`` is the loader's: it reads key files); ValueError
    names the offending key as ``vsa.<key>: ...``."""
    if not isinstance(spec, Mapping):
        raise ValueError("vsa: must be a mapping (verifierId, publicKey, minLevel, resourceUri)")
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise ValueError(f"vsa.{unknown[0]}: unknown key (known: {', '.join(sorted(SPEC_KEYS))})")
    for key in ("verifierId", "publicKey", "minLevel", "resourceUri"):
        if spec.get(key) in (None, ""):
            raise ValueError(f"vsa.{key}: required")
    resource_uri = _text(spec, "resourceUri")
    bad = [p for p in _PLACEHOLDERS.findall(resource_uri) if p not in ("name", "digest")]
    if bad:
        raise ValueError(
            f"vsa.resourceUri: unknown placeholder {{{bad[0]}}} (known: {{name}}, {{digest}})"
        )
    return VsaRequirement(
        verifier_id=_text(spec, "verifierId"),
        resource_uri=resource_uri,
        min_level=parse_min_level(spec["minLevel"]),
        max_age=parse_max_age(spec.get("maxAge")),
        policy_digest=parse_policy_digest(spec.get("policyDigest")),
        policy_uri=_text(spec, "policyUri") if spec.get("policyUri") is not None else None,
    )


def _text(spec: Mapping[str, Any], key: str) -> str:
    value = spec.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"vsa.{key}: must be a non-empty string, got {value!r}")
    return value.strip()


def parse_min_level(value: object) -> str:
    """``2`` or ``"2"`` mean SLSA_BUILD_LEVEL_2; a full level name is kept as written."""
    if isinstance(value, bool):
        raise ValueError(f"vsa.minLevel: must be a level, got {value!r}")
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        number = int(value)
        if not 0 <= number <= 4:
            raise ValueError(f"vsa.minLevel: SLSA build levels are 0 to 4, got {number}")
        return f"SLSA_BUILD_LEVEL_{number}"
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"vsa.minLevel: must be a level such as SLSA_BUILD_LEVEL_2, got {value!r}")
    level = value.strip()
    if level.startswith("SLSA_") and not re.fullmatch(r"SLSA_[A-Z]+_LEVEL_[0-9]", level):
        raise ValueError(f"vsa.minLevel: {level!r} is not SLSA_<TRACK>_LEVEL_<N>")
    return level


def parse_max_age(value: object) -> timedelta | None:
    """``90s``, ``30m``, ``24h``, ``7d`` or a number of seconds."""
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
        age = timedelta(seconds=seconds)
    except (ValueError, OverflowError):
        seconds = 0
    if seconds <= 0:
        raise ValueError(
            f"vsa.maxAge: must be a positive duration such as 90s, 30m, 24h or 7d, got {value!r}"
        )
    return age


def parse_policy_digest(value: object) -> tuple[str, str] | None:
    if value is None:
        return None
    match = _DIGEST.match(value.strip().lower()) if isinstance(value, str) else None
    if not match or len(match.group(2)) != _HEX_LENGTHS[match.group(1)]:
        raise ValueError(f"vsa.policyDigest: must look like sha256:<64 hex digits>, got {value!r}")
    return match.group(1), match.group(2)


def describe_age(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


# -- the checks ---------------------------------------------------------------------------------


def check_vsa(
    req: VsaRequirement,
    statement: Mapping[str, Any] | None,
    *,
    now: datetime,
    image_name: str | None,
    digest: str,
) -> CheckResult:
    """Judge a verified VSA Statement; every check runs so one answer lists every problem."""
    if not isinstance(statement, Mapping) or statement.get("predicateType") != VSA_V1:
        found = statement.get("predicateType") if isinstance(statement, Mapping) else None
        return CheckResult(False, f"not a VSA v1 statement ({found or 'no predicate type'})")
    resource = req.resource_for(image_name, digest)
    if resource is None:
        return CheckResult(
            False, f"resourceUri {req.resource_uri} names {{name}} but {digest} has no image name"
        )
    summary = check_slsa(
        SlsaRequirement(
            verifier_id=req.verifier_id,
            resource_uri=resource,
            verified_levels=(req.min_level,),
        ),
        dict(statement),
    )
    reasons = [summary.reason] if not summary.passed else []
    predicate = statement.get("predicate")
    predicate = predicate if isinstance(predicate, Mapping) else {}
    reasons += verify_policy(req, predicate.get("policy"))
    reasons += verify_time_verified(req.max_age, predicate.get("timeVerified"), now)
    details = {**summary.details, "time_verified": predicate.get("timeVerified")}
    if reasons:
        return CheckResult(False, "; ".join(reasons), details)
    return CheckResult(True, f"VSA from {req.verifier_id}: {summary.reason}", details)


def verify_policy(req: VsaRequirement, policy: object) -> list[str]:
    """The verifier applied the policy this requirement pins (``policyDigest``, ``policyUri``)."""
    policy = policy if isinstance(policy, Mapping) else {}
    problems = []
    if req.policy_digest is not None:
        algorithm, expected = req.policy_digest
        digests = policy.get("digest")
        found = digests.get(algorithm) if isinstance(digests, Mapping) else None
        if not isinstance(found, str) or found.lower() != expected:
            problems.append(
                f"policy digest {algorithm}:{found or '(none)'} is not the expected "
                f"{algorithm}:{expected}"
            )
    if req.policy_uri is not None and policy.get("uri") != req.policy_uri:
        problems.append(f"policy uri {policy.get('uri') or '(none)'} is not {req.policy_uri}")
    return problems


def verify_time_verified(max_age: timedelta | None, value: object, now: datetime) -> list[str]:
    """``timeVerified`` is a valid instant, not in the future, and within ``max_age``."""
    when = parse_time(value)
    if when is None:
        return [f"timeVerified {value!r} is not an RFC 3339 time"]
    if when > now + CLOCK_SKEW:
        return [f"timeVerified {value} is in the future"]
    age = now - when
    if max_age is not None and age > max_age:
        return [
            f"VSA expired: verified at {value}, {describe_age(age)} ago, older than maxAge "
            f"{describe_age(max_age)}"
        ]
    return []


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    # Go and others write nanoseconds; Python reads at most microseconds.
    text = re.sub(r"(\.[0-9]{6})[0-9]+", r"\1", text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
