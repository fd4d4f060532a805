"""in-toto layouts, judged at decision time against the links stored (and verified) at ingest.

The in-toto library's verification steps are reused where they judge data (threshold
constraints, artifact rules, summary links); the steps that read files or run commands are
replaced, because a server has neither a link directory nor the right to run a layout's
commands:

- Layout signatures are checked over the bytes the owner signed (canonical JSON of the received
  ``signed`` body, or the DSSE PAE). in-toto's ``Metablock`` re-serialises the body through its
  model, which drops fields it does not know (in-toto-golang's ``rootcas``, ``cert_constraints``)
  and so rejects layouts in-toto-golang signed correctly. They are checked when the policy set
  loads (a layout its owners did not sign does not load) and the decision uses that snapshot,
  as the rest of the service verifies once and judges the stored facts afterwards.
- Links come from the store, not a directory, and their signatures were verified at ingest: a
  link counts for a functionary when one of its verified signers *is* that functionary's key
  (same SubjectPublicKeyInfo), never because a key id string says so.
- A store holds links of many builds, where in-toto's directory holds one build. For every step
  the links of distinct authorized functionaries that agree on their artifacts form an option;
  the final step keeps only options whose products include the image digest, earlier steps are
  tried most related first (sharing artifact hashes with the later steps), and the first chain
  of options that passes the artifact rules wins. Functionaries whose links disagree with the
  chosen ones are left out as long as the threshold is still met; in-toto, reading one build's
  directory, would reject the disagreement instead.
- Inspections are never executed; a layout with inspections loads only with
  ``inspections: skip`` and every skipped inspection is reported in the result's details.
- Sublayouts cannot be uploaded (ingest stores links only), so the policy names them:
  ``sublayouts: {step-name: layouts/sub.layout}``. A sublayout counts for each functionary of
  its step whose key verifies its signature, and its own steps are judged against the store.
"""

from __future__ import annotations

import base64
import binascii
import copy
import itertools
import json
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from in_toto import verifylib
from in_toto.exceptions import RuleVerificationError, ThresholdVerificationError
from in_toto.models.layout import Layout, Step
from in_toto.models.link import Link
from securesystemslib.dsse import Envelope as SSlibEnvelope
from securesystemslib.exceptions import FormatError, UnverifiedSignatureError
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import Key, Signature

from app.policy.facts import StoredAttestation
from app.policy.results import CheckResult
from app.verification.keyring import spki_key_id, sslib_public_key

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
LINK_V03_PREDICATE_TYPE = "https://in-toto.io/attestation/link/v0.3"

# Bounds the search over the store's links: past this many candidate chains the answer is
# "no chain passed" with the reasons of the most likely ones.
MAX_CHAINS = 64
# A sublayout may delegate again; this bounds recursion through a misconfigured mapping.
MAX_SUBLAYOUT_DEPTH = 8

_SPEC_KEYS = {"file", "keys", "inspections", "sublayouts", "parameters"}

# in-toto's rule verification keeps its trace in a module global (verifylib.RULE_TRACE) that
# each call clears and refills; concurrent decisions would corrupt it or raise KeyError.
_RULES_LOCK = threading.Lock()


# -- keys -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OwnerKey:
    """A public key that must have signed the layout."""

    source: str
    public_key: PublicKeyTypes
    keytype: str  # securesystemslib keytype: rsa | ecdsa | ed25519
    public_value: str  # keyval["public"]: PEM, or hex for ed25519
    schemes: tuple[str, ...]  # the schemes it may have signed with

    @property
    def key_id(self) -> str:
        return spki_key_id(self.public_key)

    def sslib_dicts(self, keyid: str) -> Iterator[dict[str, Any]]:
        for scheme in self.schemes:
            yield {
                "keyid": keyid,
                "keytype": self.keytype,
                "scheme": scheme,
                "keyval": {"public": self.public_value},
            }


_RSA_SCHEMES = (
    "rsassa-pss-sha256",
    "rsa-pkcs1v15-sha256",
    "rsassa-pss-sha384",
    "rsassa-pss-sha512",
    "rsa-pkcs1v15-sha384",
    "rsa-pkcs1v15-sha512",
)
_EC_SCHEMES = {
    "secp256r1": "ecdsa-sha2-nistp256",
    "secp384r1": "ecdsa-sha2-nistp384",
    "secp521r1": "ecdsa-sha2-nistp521",
}


def _owner_key(public_key: PublicKeyTypes, source: str, scheme: str | None = None) -> OwnerKey:
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return OwnerKey(source, public_key, "ed25519", raw.hex(), (scheme or "ed25519",))
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    if isinstance(public_key, rsa.RSAPublicKey):
        return OwnerKey(source, public_key, "rsa", pem, (scheme,) if scheme else _RSA_SCHEMES)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve_scheme = _EC_SCHEMES.get(public_key.curve.name)
        if curve_scheme is None:
            raise ValueError(f"{source}: unsupported elliptic curve {public_key.curve.name}")
        return OwnerKey(source, public_key, "ecdsa", pem, (scheme or curve_scheme,))
    raise ValueError(f"{source}: unsupported key type {type(public_key).__name__}")


def read_owner_key(path: Path, source: str | None = None) -> OwnerKey:
    """A PEM public key or a securesystemslib/in-toto JSON key; ValueError names the file."""
    name = source or str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{name}: cannot read: {exc.strerror}") from exc
    text = raw.lstrip()
    if text.startswith(b"{"):
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{name}: invalid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{name}: not a securesystemslib JSON key")
        return sslib_key(data, name)
    if b"PRIVATE KEY" in raw:
        raise ValueError(f"{name}: holds a private key; configure the public key only")
    try:
        public_key = serialization.load_pem_public_key(raw)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"{name}: not a PEM public key: {exc}") from exc
    return _owner_key(public_key, name)


def sslib_key(data: Mapping[str, Any], source: str) -> OwnerKey:
    """A securesystemslib key dict ({keytype, scheme, keyval: {public}}) as an OwnerKey."""
    keyval = data.get("keyval")
    keytype, scheme = data.get("keytype"), data.get("scheme")
    if "method" in data or (isinstance(keyval, Mapping) and isinstance(keyval.get("public"), dict)):
        raise ValueError(f"{source}: OpenPGP keys are not supported")
    if not (isinstance(keyval, Mapping) and isinstance(keyval.get("public"), str)):
        raise ValueError(f"{source}: key needs keyval.public")
    if keyval.get("private"):
        raise ValueError(f"{source}: holds a private key; configure the public key only")
    if not isinstance(keytype, str) or not isinstance(scheme, str):
        raise ValueError(f"{source}: key needs keytype and scheme")
    public = keyval["public"]
    try:
        public_key = sslib_public_key(keytype, public)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"{source}: bad public key value: {exc}") from exc
    key = _owner_key(public_key, source, scheme)
    # Keep the value as written: keytype spellings such as "ecdsa-sha2-nistp256" are what the
    # signer hashed into its key id, and securesystemslib accepts them.
    return OwnerKey(source, public_key, keytype, public, key.schemes)


# -- signed layout documents ------------------------------------------------------------------


@dataclass(frozen=True)
class LayoutDocument:
    """A signed layout file as read: classic ``{signed, signatures}`` or a DSSE envelope."""

    source: str
    data: dict[str, Any]

    def body(self) -> dict[str, Any]:
        if isinstance(self.data.get("signed"), dict):
            return copy.deepcopy(self.data["signed"])
        try:
            payload = base64.b64decode(self.data.get("payload", ""), validate=True)
            body = json.loads(payload)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"{self.source}: DSSE payload is not base64 JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise ValueError(f"{self.source}: DSSE payload is not a JSON object")
        return body

    def layout(self) -> Layout:
        body = self.body()
        if body.get("_type") != "layout":
            raise ValueError(f"{self.source}: not an in-toto layout (_type {body.get('_type')!r})")
        try:
            return Layout.read(body)
        except (FormatError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ValueError(f"{self.source}: invalid in-toto layout: {exc}") from exc

    def signed_message(self) -> tuple[bytes, list[Signature]]:
        """What the signatures cover, and the signatures that are well-formed."""
        if "signed" in self.data:
            try:
                canonical = encode_canonical(self.data["signed"])
            except FormatError as exc:
                raise ValueError(f"{self.source}: layout cannot be canonicalised: {exc}") from exc
            message = (canonical or "").encode("utf-8")
            entries = self.data.get("signatures")
            signatures = []
            for entry in entries if isinstance(entries, list) else []:
                try:
                    signatures.append(Signature.from_dict(copy.deepcopy(entry)))
                except (KeyError, TypeError, ValueError, AttributeError):
                    # A malformed entry verifies nothing; other signatures may still count.
                    continue
            return message, signatures
        try:
            envelope = SSlibEnvelope.from_dict(copy.deepcopy(self.data))
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise ValueError(f"{self.source}: malformed DSSE envelope: {exc}") from exc
        if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE:
            raise ValueError(f"{self.source}: DSSE payloadType {envelope.payload_type!r}")
        return envelope.pae(), list(envelope.signatures.values())

    def signature_key_ids(self) -> list[str]:
        try:
            return [sig.keyid for sig in self.signed_message()[1]]
        except ValueError:
            return []

    def verify_with(self, key_dicts: Iterable[Mapping[str, Any]]) -> bool:
        """True when one of the signatures verifies with one of the (same-key) dicts.

        The signature's keyid is only a hint outside what was signed; matching on it would
        reject a valid signature whose signer computed the id another way (legacy
        keyid_hash_algorithms), so every signature is tried with the key.
        """
        message, signatures = self.signed_message()
        for key_dict in key_dicts:
            for signature in signatures:
                try:
                    key = Key.from_dict(signature.keyid, copy.deepcopy(dict(key_dict)))
                    key.verify_signature(signature, message)
                except (UnverifiedSignatureError, ValueError, KeyError, TypeError):
                    continue
                return True
        return False


def read_layout_document(path: Path, source: str | None = None) -> LayoutDocument:
    name = source or str(path)
    try:
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"{name}: cannot read: {exc.strerror}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{name}: invalid JSON: {exc}") from exc
    if not isinstance(data, dict) or not ("signed" in data or "payload" in data):
        raise ValueError(f"{name}: not signed in-toto metadata (classic or DSSE)")
    document = LayoutDocument(name, data)
    document.layout()  # validates
    return document


def _functionary_dict(layout: Layout, keyid: str) -> dict[str, Any]:
    key = dict(layout.keys.get(keyid) or {})
    key.setdefault("keyid", keyid)
    return key


# -- the requirement --------------------------------------------------------------------------


@dataclass(frozen=True)
class LayoutSnapshot:
    """The files as they were when the policy set loaded: the decision judges what was hashed.

    ``parsed`` holds the in-toto layouts (parameters substituted), the root under "" and each
    sublayout under its step; they are only read afterwards. ``owner_verified`` records that
    the owner keys verified the root layout at load, so decisions need not redo it.
    """

    layout: LayoutDocument
    owner_keys: tuple[OwnerKey, ...]
    sublayouts: dict[str, LayoutDocument] = field(default_factory=dict)
    parsed: dict[str, Layout] = field(default_factory=dict)
    owner_verified: bool = False


@dataclass(frozen=True)
class LayoutRequirement:
    layout_path: Path
    owner_key_paths: list[Path]
    skip_inspections: bool
    # Optional extensions of the YAML mapping: `sublayouts: {step: file}`, `parameters: {k: v}`
    # (in-toto's substitution parameters).
    sublayout_paths: dict[str, Path] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    snapshot: LayoutSnapshot | None = field(default=None, repr=False, compare=False)


def load_layout_requirement(spec: dict[str, Any], policy_dir: Path) -> LayoutRequirement:
    """The YAML ``layout:`` mapping, with every file read and the layout signatures checked.

    Raises ValueError naming the key or file: unknown keys, missing or unreadable files, files
    outside ``policy_dir``, a layout the owner keys did not all sign, unsupported keys,
    inspections without ``inspections: skip``, sublayouts for unknown steps, parameters the
    layout cannot take.
    """
    if not isinstance(spec, Mapping):
        raise ValueError("layout: must be a mapping {file, keys, inspections}")
    unknown = sorted(set(spec) - _SPEC_KEYS)
    if unknown:
        raise ValueError(
            f"layout.{unknown[0]}: unknown key (known: {', '.join(sorted(_SPEC_KEYS))})"
        )
    base = policy_dir.resolve()
    layout_path = _policy_file(base, spec.get("file"), "layout.file")
    keys = spec.get("keys")
    if not isinstance(keys, list) or not keys:
        raise ValueError("layout.keys: list the layout owner's public key files (at least one)")
    key_paths = [_policy_file(base, key, f"layout.keys[{i}]") for i, key in enumerate(keys)]
    inspections = spec.get("inspections")
    if inspections not in (None, "skip"):
        raise ValueError(
            f"layout.inspections: {inspections!r} is not supported; the only value is 'skip' "
            "(Provenant never runs inspection commands)"
        )
    sublayouts = spec.get("sublayouts") or {}
    if not isinstance(sublayouts, Mapping):
        raise ValueError("layout.sublayouts: must map step names to sublayout files")
    sublayout_paths = {
        str(step): _policy_file(base, path, f"layout.sublayouts.{step}")
        for step, path in sublayouts.items()
    }
    parameters = spec.get("parameters") or {}
    if not isinstance(parameters, Mapping) or not all(
        isinstance(k, str) and isinstance(v, (str, int, float)) for k, v in parameters.items()
    ):
        raise ValueError("layout.parameters: must map parameter names to scalar values")
    requirement = LayoutRequirement(
        layout_path=layout_path,
        owner_key_paths=key_paths,
        skip_inspections=inspections == "skip",
        sublayout_paths=sublayout_paths,
        parameters={k: str(v) for k, v in parameters.items()},
    )
    snapshot = _read_snapshot(requirement, base)
    _validate(requirement, snapshot)
    return replace(requirement, snapshot=replace(snapshot, owner_verified=True))


def _policy_file(base: Path, value: object, key: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key}: must be a file path relative to the policy directory")
    path = (base / value).resolve()
    if not path.is_relative_to(base):
        raise ValueError(f"{key}: {value} is outside the policy directory")
    if not path.is_file():
        raise ValueError(f"{key}: {value} does not exist")
    return path


def _source_name(path: Path, base: Path | None) -> str:
    if base is not None and path.is_relative_to(base):
        return path.relative_to(base).as_posix()
    return str(path)


def _read_snapshot(req: LayoutRequirement, base: Path | None = None) -> LayoutSnapshot:
    """Reads and parses every file; ValueError names the file that cannot be used."""
    document = read_layout_document(req.layout_path, _source_name(req.layout_path, base))
    owner_keys = tuple(read_owner_key(p, _source_name(p, base)) for p in req.owner_key_paths)
    sublayouts = {
        step: read_layout_document(path, _source_name(path, base))
        for step, path in req.sublayout_paths.items()
    }
    parsed = {"": document.layout(), **{step: d.layout() for step, d in sublayouts.items()}}
    if req.parameters:
        for where, layout in parsed.items():
            source = sublayouts[where].source if where else document.source
            try:
                verifylib.substitute_parameters(layout, dict(req.parameters))
            except (KeyError, IndexError, ValueError, FormatError) as exc:
                raise ValueError(f"{source}: parameter substitution failed: {exc!r}") from exc
    return LayoutSnapshot(document, owner_keys, sublayouts, parsed)


def _validate(req: LayoutRequirement, snapshot: LayoutSnapshot) -> None:
    document = snapshot.layout
    for key in snapshot.owner_keys:
        if not _signed_by(document, key):
            raise ValueError(
                f"{document.source}: no valid signature by owner key {key.source} "
                f"(signatures by key ids {', '.join(document.signature_key_ids()) or 'none'})"
            )
    layouts = snapshot.parsed
    step_names = {step.name for layout in layouts.values() for step in layout.steps}
    for step in snapshot.sublayouts:
        if step not in step_names:
            raise ValueError(f"layout.sublayouts.{step}: no layout has a step named {step!r}")
    for where, layout in layouts.items():
        source = snapshot.sublayouts[where].source if where else document.source
        for keyid, key in layout.keys.items():
            sslib_key(key, f"{source}: functionary key {keyid}")
        if layout.inspect and not req.skip_inspections:
            names = ", ".join(f"{i.name} ({' '.join(i.run)})" for i in layout.inspect)
            raise ValueError(
                f"{source}: has inspections {names}; Provenant never runs inspection commands, "
                "so add `inspections: skip` to accept the layout without them"
            )


def _signed_by(document: LayoutDocument, key: OwnerKey) -> bool:
    return document.verify_with(key.sslib_dicts(key.key_id))


# -- links from the store ---------------------------------------------------------------------


@dataclass(frozen=True)
class _LinkView:
    """What in-toto's rule functions read of a link (duck-typed for ``in_toto.models.Link``).

    Ingest validated each link with in-toto's model; building that model again for every
    decision costs most of the decision (its validation introspects every attribute).
    """

    name: str
    materials: dict[str, dict[str, str]]
    products: dict[str, dict[str, str]]
    byproducts: dict[str, Any]
    command: list[str]


def _link_view(body: Mapping[str, Any]) -> _LinkView:
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("no step name")
    artifacts = []
    for field_name in ("materials", "products"):
        value = body.get(field_name) or {}
        if not isinstance(value, Mapping) or not all(
            isinstance(path, str)
            and isinstance(digests, Mapping)
            and all(isinstance(a, str) and isinstance(d, str) for a, d in digests.items())
            for path, digests in value.items()
        ):
            raise ValueError(f"{field_name} must map paths to digest objects")
        artifacts.append({path: dict(digests) for path, digests in value.items()})
    command = body.get("command") or []
    byproducts = body.get("byproducts") or {}
    if not isinstance(command, list) or not isinstance(byproducts, Mapping):
        raise ValueError("command must be a list and byproducts an object")
    return _LinkView(name, artifacts[0], artifacts[1], dict(byproducts), list(command))


@dataclass(frozen=True)
class _Candidate:
    """One stored link (or a verified sublayout's summary) that may stand for a step."""

    link: _LinkView | Link
    attestation_ids: tuple[str, ...]
    signer_ids: frozenset[str]  # canonical SPKI ids of the verified signers
    uploaded_at: datetime | None

    def artifacts_key(self) -> str:
        return json.dumps([self.link.materials, self.link.products], sort_keys=True)

    def hashes(self) -> set[str]:
        return _hashes(self.link.materials) | _hashes(self.link.products)


def _hashes(artifacts: Mapping[str, Any]) -> set[str]:
    return {
        f"{alg}:{value}".lower()
        for digests in artifacts.values()
        if isinstance(digests, Mapping)
        for alg, value in digests.items()
    }


def _signer_ids(attestation: StoredAttestation) -> frozenset[str]:
    ids = set()
    for signer in attestation.signers:
        if signer.kind != "key":
            continue
        if signer.key_id:
            # Ingest records the canonical id (sha256 of the SubjectPublicKeyInfo).
            ids.add(signer.key_id)
        elif signer.public_key_pem:
            try:
                ids.add(
                    spki_key_id(serialization.load_pem_public_key(signer.public_key_pem.encode()))
                )
            except (ValueError, UnsupportedAlgorithm):
                pass
    return frozenset(ids)


def _link_body(statement: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """A classic link body, also from an in-toto link v0.3 Statement."""
    if statement.get("_type") == "link":
        return statement
    if statement.get("predicateType") != LINK_V03_PREDICATE_TYPE:
        return None
    predicate = statement.get("predicate")
    if not isinstance(predicate, Mapping):
        return None
    materials = {}
    for item in predicate.get("materials") or []:
        if isinstance(item, Mapping) and isinstance(item.get("digest"), Mapping):
            materials[str(item.get("name") or item.get("uri") or "")] = dict(item["digest"])
    products = {}
    for subject in statement.get("subject") or []:
        if isinstance(subject, Mapping) and isinstance(subject.get("digest"), Mapping):
            products[str(subject.get("name") or "")] = dict(subject["digest"])
    return {
        "_type": "link",
        "name": predicate.get("name"),
        "command": list(predicate.get("command") or []),
        "materials": materials,
        "products": products,
        "byproducts": dict(predicate.get("byproducts") or {}),
        "environment": dict(predicate.get("environment") or {}),
    }


@dataclass
class _Pool:
    """The stored links, by step name."""

    by_name: dict[str, list[_Candidate]]
    ignored: list[str]

    @classmethod
    def of(cls, links: Sequence[StoredAttestation]) -> _Pool:
        by_name: dict[str, list[_Candidate]] = {}
        ignored = []
        for attestation in links:
            if attestation.revoked:
                ignored.append(f"{attestation.id} (revoked)")
                continue
            body = _link_body(attestation.statement or {})
            if body is None:
                ignored.append(f"{attestation.id} (not an in-toto link)")
                continue
            try:
                link = _link_view(body)
            except ValueError as exc:
                ignored.append(f"{attestation.id} (invalid link: {exc})")
                continue
            candidate = _Candidate(
                link, (attestation.id,), _signer_ids(attestation), attestation.uploaded_at
            )
            by_name.setdefault(link.name, []).append(candidate)
        for candidates in by_name.values():
            # Newest first: among equally plausible links the latest build is the likely one.
            candidates.sort(key=_upload_order, reverse=True)
        return cls(by_name, ignored)


def _upload_order(candidate: _Candidate) -> float:
    uploaded = candidate.uploaded_at
    if uploaded is None:
        return 0.0
    return _aware(uploaded).timestamp()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- verification -----------------------------------------------------------------------------


class _Failure(Exception):
    """Verification failed: ``error`` is the in-toto exception name (or ours) for tests."""

    def __init__(self, error: str, reason: str) -> None:
        super().__init__(reason)
        self.error = error
        self.reason = reason


@dataclass
class _Context:
    pool: _Pool
    now: datetime
    skip_inspections: bool
    sublayouts: dict[str, LayoutDocument]
    parsed: dict[str, Layout]
    skipped_inspections: list[dict[str, Any]] = field(default_factory=list)
    command_mismatches: list[dict[str, Any]] = field(default_factory=list)
    used_links: dict[str, list[str]] = field(default_factory=dict)
    chains_tried: int = 0


def check_layout(
    req: LayoutRequirement,
    links: list[StoredAttestation],
    image_digest: tuple[str, str],
    now: datetime,
) -> CheckResult:
    """Verify the layout's supply chain from the stored links, ending in ``image_digest``."""
    algorithm, digest = image_digest[0].lower(), image_digest[1].lower()
    details: dict[str, Any] = {
        "layout": str(req.layout_path),
        "image": f"{algorithm}:{digest}",
        "skipped_inspections": [],
        "links": [],
        "error": None,
    }
    try:
        snapshot = req.snapshot or _read_snapshot(req)
    except ValueError as exc:
        return _failed(details, "InvalidLayout", f"layout cannot be used: {exc}")
    context = _Context(
        pool=_Pool.of(links),
        now=_aware(now),
        skip_inspections=req.skip_inspections,
        sublayouts=dict(snapshot.sublayouts),
        parsed=snapshot.parsed,
    )
    details["ignored_links"] = context.pool.ignored
    try:
        if not snapshot.owner_verified:
            _verify_owner_signatures(snapshot)
        layout = snapshot.parsed[""]
        summary = _verify_layout(
            layout, snapshot.layout.source, context, (algorithm, digest), path=()
        )
    except _Failure as failure:
        _collect(details, context)
        return _failed(details, failure.error, failure.reason)
    _collect(details, context)
    final = layout.steps[-1].name
    skipped = len(context.skipped_inspections)
    note = f"; {skipped} inspection(s) skipped, never run" if skipped else ""
    details["summary_products"] = sorted(summary.products)
    return CheckResult(
        True,
        f"layout {snapshot.layout.source} verified: signed by "
        f"{', '.join(k.source for k in snapshot.owner_keys)}, unexpired, "
        f"{len(layout.steps)} step(s) by authorized functionaries meet their thresholds and "
        f"artifact rules, and {algorithm}:{digest} is a product of the final step "
        f"{final!r}{note}",
        details,
    )


def _failed(details: dict[str, Any], error: str, reason: str) -> CheckResult:
    details["error"] = error
    return CheckResult(False, reason, details)


def _collect(details: dict[str, Any], context: _Context) -> None:
    details["skipped_inspections"] = context.skipped_inspections
    details["command_mismatches"] = context.command_mismatches
    # The engine reports these ids as the attestations the requirement used.
    details["links"] = list(dict.fromkeys(i for ids in context.used_links.values() for i in ids))
    details["links_by_step"] = context.used_links
    details["chains_tried"] = context.chains_tried


def _verify_owner_signatures(snapshot: LayoutSnapshot) -> None:
    document = snapshot.layout
    if not snapshot.owner_keys:
        raise _Failure(
            "SignatureVerificationError",
            f"layout {document.source}: no owner key configured; a layout is trusted only "
            "through its owner's signature",
        )
    try:
        document.signed_message()
    except ValueError as exc:
        raise _Failure("SignatureVerificationError", str(exc)) from exc
    for key in snapshot.owner_keys:
        if not _signed_by(document, key):
            found = ", ".join(document.signature_key_ids()) or "none"
            raise _Failure(
                "SignatureVerificationError",
                f"layout {document.source} is not signed by owner key {key.source} "
                f"(key id {key.key_id}); it carries signatures by key ids {found}",
            )


def _verify_layout(
    layout: Layout,
    source: str,
    context: _Context,
    required: tuple[str, str] | None,
    path: tuple[str, ...],
) -> Link:
    """in_toto_verify without files or commands; returns the chain's summary link."""
    where = f"layout {source}" if not path else f"sublayout {source} (step {' > '.join(path)})"
    expires = _parse_time(layout.expires)
    if expires is None:
        raise _Failure("FormatError", f"{where}: expiry {layout.expires!r} is not a timestamp")
    if expires <= context.now:
        raise _Failure(
            "LayoutExpiredError",
            f"{where} expired at {layout.expires} (checked at {context.now.isoformat()})",
        )
    for inspection in layout.inspect:
        if not context.skip_inspections:
            raise _Failure(
                "InspectionNotAllowed",
                f"{where} has inspection {inspection.name!r} ({' '.join(inspection.run)}); "
                "Provenant never runs inspection commands and the requirement does not say "
                "`inspections: skip`",
            )
        context.skipped_inspections.append(
            {
                "layout": source,
                "name": inspection.name,
                "run": list(inspection.run),
                "reason": "inspections are never executed by Provenant; their rules were "
                "not evaluated",
            }
        )
    if not layout.steps and required is not None:
        # in-toto passes a layout without steps; admitting an image on it would admit anything.
        raise _Failure(
            "EmptyLayout",
            f"{where} has no steps, so nothing in it shows that {required[0]}:{required[1]} "
            "came out of the supply chain",
        )
    options = {}
    for index, step in enumerate(layout.steps):
        final = index == len(layout.steps) - 1
        options[step.name] = _step_options(
            layout, step, context, required if final else None, path, where
        )
    return _search_chain(layout, options, context, where, path)


def _parse_time(value: str) -> datetime | None:
    try:
        return _aware(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except (ValueError, AttributeError):
        return None


def _functionaries(layout: Layout, step: Step) -> dict[str, str]:
    """Authorized canonical key id -> the layout keyid naming it (first spelling wins).

    Keyed by the key itself, so one key listed under two ids counts once towards a threshold.
    """
    result: dict[str, str] = {}
    for keyid in step.pubkeys:
        key = layout.keys.get(keyid)
        if key is None:
            continue
        try:
            canonical = sslib_key(key, keyid).key_id
        except ValueError:
            continue
        result.setdefault(canonical, keyid)
    return result


def _step_options(
    layout: Layout,
    step: Step,
    context: _Context,
    required: tuple[str, str] | None,
    path: tuple[str, ...],
    where: str,
) -> list[dict[str, _Candidate]]:
    """Groups of links (one per distinct functionary) agreeing on artifacts, >= threshold."""
    functionaries = _functionaries(layout, step)
    per_key: dict[str, list[_Candidate]] = {}
    if step.name in context.sublayouts and step.name not in path:
        per_key = _sublayout_candidates(layout, step, functionaries, context, required, path)
        if len(per_key) < step.threshold:
            document = context.sublayouts[step.name]
            raise _Failure(
                "ThresholdVerificationError",
                f"{where}: step {step.name!r} is delegated to sublayout {document.source}, "
                f"which needs signatures by {step.threshold} authorized functionary key(s) "
                f"({', '.join(functionaries.values()) or 'none usable'}); {len(per_key)} "
                f"verify (it carries signatures by key ids "
                f"{', '.join(document.signature_key_ids()) or 'none'})",
            )
    else:
        for candidate in context.pool.by_name.get(step.name, []):
            for canonical in functionaries:
                if canonical in candidate.signer_ids:
                    per_key.setdefault(canonical, []).append(candidate)
    stored = len(context.pool.by_name.get(step.name, []))
    if len(per_key) < step.threshold:
        error = "ThresholdVerificationError" if stored >= step.threshold else "LinkNotFoundError"
        keys = ", ".join(functionaries.values()) or "none usable"
        raise _Failure(
            error,
            f"{where}: step {step.name!r} needs links signed by {step.threshold} distinct "
            f"authorized functionary key(s) ({keys}); found {len(per_key)} "
            f"({stored} stored link(s) named {step.name!r} in all)",
        )
    groups: dict[str, dict[str, _Candidate]] = {}
    for canonical, candidates in per_key.items():
        for candidate in candidates:
            groups.setdefault(candidate.artifacts_key(), {}).setdefault(canonical, candidate)
    options = [group for group in groups.values() if len(group) >= step.threshold]
    if not options:
        raise _Failure(
            "ThresholdVerificationError",
            f"{where}: step {step.name!r} needs {step.threshold} functionaries reporting the "
            f"same materials and products; their {sum(map(len, per_key.values()))} link(s) "
            "disagree",
        )
    if required is not None:
        algorithm, digest = required
        matching = [o for o in options if _produces(next(iter(o.values())).link, required)]
        if not matching:
            products = sorted(
                {
                    f"{name} ({', '.join(f'{a}:{v[:12]}…' for a, v in digests.items())})"
                    for o in options
                    for name, digests in next(iter(o.values())).link.products.items()
                }
            )
            raise _Failure(
                "ImageNotFinalProduct",
                f"{where}: image {algorithm}:{digest} is not a product of the final step "
                f"{step.name!r}; its {len(options)} candidate link(s) produce "
                f"{', '.join(products) or 'nothing'}",
            )
        options = matching
    options.sort(key=lambda o: max(_upload_order(c) for c in o.values()), reverse=True)
    return options


def _produces(link: _LinkView | Link, digest: tuple[str, str]) -> bool:
    algorithm, value = digest
    return any(
        isinstance(digests, Mapping) and str(digests.get(algorithm, "")).lower() == value
        for digests in link.products.values()
    )


def _sublayout_candidates(
    layout: Layout,
    step: Step,
    functionaries: Mapping[str, str],
    context: _Context,
    required: tuple[str, str] | None,
    path: tuple[str, ...],
) -> dict[str, list[_Candidate]]:
    if len(path) >= MAX_SUBLAYOUT_DEPTH:
        raise _Failure("SublayoutDepth", f"sublayouts nest deeper than {MAX_SUBLAYOUT_DEPTH}")
    document = context.sublayouts[step.name]
    signers = [
        canonical
        for canonical, keyid in functionaries.items()
        if _verify_functionary_signature(document, _functionary_dict(layout, keyid))
    ]
    if not signers:
        return {}
    sublayout = context.parsed[step.name]
    summary = _verify_layout(sublayout, document.source, context, required, (*path, step.name))
    # The sublayout's own links are recorded under "step > substep" by the recursion.
    candidate = _Candidate(summary, (), frozenset(signers), None)
    return {canonical: [candidate] for canonical in signers}


def _verify_functionary_signature(document: LayoutDocument, key: Mapping[str, Any]) -> bool:
    try:
        owner = sslib_key(key, str(key.get("keyid")))
    except ValueError:
        return False
    return document.verify_with(owner.sslib_dicts(str(key.get("keyid"))))


def _ranked(layout: Layout, options: Mapping[str, list[dict[str, _Candidate]]]) -> list[list[Any]]:
    """Per step, its options most related to the later steps first (by shared hashes)."""
    steps = list(layout.steps)
    ranked: dict[str, list[dict[str, _Candidate]]] = {}
    last = steps[-1].name
    ranked[last] = options[last]
    relevant = set().union(*(_option_hashes(o) for o in options[last]))
    for step in reversed(steps[:-1]):
        scored = [(len(_option_hashes(o) & relevant), o) for o in options[step.name]]
        related = [item for item in scored if item[0] > 0] or scored
        related.sort(key=lambda item: item[0], reverse=True)  # stable: newest first among ties
        ranked[step.name] = [o for _, o in related]
        relevant |= set().union(*(_option_hashes(o) for o in ranked[step.name]))
    return [ranked[step.name] for step in steps]


def _option_hashes(option: Mapping[str, _Candidate]) -> set[str]:
    return next(iter(option.values())).hashes()


def _search_chain(
    layout: Layout,
    options: Mapping[str, list[dict[str, _Candidate]]],
    context: _Context,
    where: str,
    path: tuple[str, ...],
) -> Link:
    steps = list(layout.steps)
    functionaries = {step.name: _functionaries(layout, step) for step in steps}
    first_failure: _Failure | None = None
    tried = 0
    for chain in itertools.islice(itertools.product(*_ranked(layout, options)), MAX_CHAINS):
        tried += 1
        context.chains_tried += 1
        chain_link_dict = {
            step.name: {
                functionaries[step.name][canonical]: candidate.link
                for canonical, candidate in option.items()
            }
            for step, option in zip(steps, chain, strict=True)
        }
        failure = _verify_chain_rules(layout, chain_link_dict, where)
        if failure is not None:
            first_failure = first_failure or failure
            continue
        reduced = verifylib.reduce_chain_links(chain_link_dict)
        for step, option in zip(steps, chain, strict=True):
            key = " > ".join((*path, step.name))
            ids = [i for c in option.values() for i in c.attestation_ids]
            if ids:  # a sublayout's links are listed under its own steps
                context.used_links[key] = ids
            for candidate in option.values():
                if candidate.link.command != step.expected_command and step.expected_command:
                    # in-toto only warns on command misalignment (a functionary can alias).
                    context.command_mismatches.append(
                        {
                            "step": key,
                            "expected": list(step.expected_command),
                            "found": list(candidate.link.command),
                        }
                    )
        return verifylib.get_summary_link(layout, reduced, path[-1] if path else "")
    assert first_failure is not None  # every step had at least one option
    if tried > 1:
        first_failure.reason += f" (and {tried - 1} other combination(s) of stored links failed)"
    raise first_failure


def _verify_chain_rules(
    layout: Layout, chain_link_dict: dict[str, dict[str, _LinkView | Link]], where: str
) -> _Failure | None:
    """in-toto's threshold constraints and step artifact rules on one chain of links."""
    try:
        verifylib.verify_threshold_constraints(layout, chain_link_dict)
    except ThresholdVerificationError as exc:
        return _Failure("ThresholdVerificationError", f"{where}: {_first_line(exc)}")
    reduced = verifylib.reduce_chain_links(chain_link_dict)
    with _RULES_LOCK:
        try:
            verifylib.verify_all_item_rules(layout.steps, reduced)
        except (RuleVerificationError, FormatError) as exc:
            # RULE_TRACE still describes the failing item only while the lock is held.
            trace = verifylib.RULE_TRACE
            item, kind = trace.get("source_name"), trace.get("source_type")
            context = f"step {item!r} {kind}: " if item and kind else ""
            return _Failure(type(exc).__name__, f"{where}: {context}{_first_line(exc)}")
    return None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
