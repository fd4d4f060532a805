"""Read every policy file, validate everything, and compile what the engine evaluates.

A policy directory is reviewed like code, so a load reports *every* problem at once, each with
its file, YAML path and line, instead of stopping at the first: one review round, not ten.
Nothing half-valid is ever returned; the caller keeps its last good set on PolicyLoadError.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from app.policy import schema
from app.policy.authorities import (
    Authority,
    EvidenceRules,
    Identity,
    KeyAuthority,
    KeylessAuthority,
    compile_regexp,
    load_public_keys,
)
from app.policy.cel_conditions import Condition, ConditionError, compile_condition
from app.policy.matching import (
    ImageGlob,
    ImageRef,
    NamespaceGlob,
    any_matches,
    compile_image_glob,
    compile_namespace_glob,
)
from app.verification.fulcio import FULCIO_ARC, FULCIO_EXTENSIONS

Loc = tuple[str | int, ...]
_M = TypeVar("_M", bound=BaseModel)
_FULCIO_CLAIMS = frozenset(FULCIO_EXTENSIONS.values())


# -- errors -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadError:
    file: str  # relative to the policy directory ("" for the directory itself)
    path: str  # YAML path, e.g. "spec.require[0].conditions[1].expression"
    line: int | None
    message: str
    document: int | None = None  # 1-based, for multi-document files

    def __str__(self) -> str:
        where = self.file or "."
        if self.line is not None:
            where += f":{self.line}"
        if self.document is not None and self.document > 1:
            where += f" (document {self.document})"
        return f"{where}: {self.path + ': ' if self.path else ''}{self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "document": self.document,
            "path": self.path,
            "line": self.line,
            "message": self.message,
        }


class PolicyLoadError(ValueError):
    def __init__(self, errors: list[LoadError]) -> None:
        self.errors = errors
        lines = "\n".join(f"  {e}" for e in errors)
        super().__init__(f"{len(errors)} error(s) in the policy directory:\n{lines}")


# -- compiled policy ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledRequirement:
    index: int
    name: str
    predicate_type: str | None  # None: any signature over the digest
    authorities: tuple[Authority, ...]
    count: int
    slsa: Any | None  # app.policy.slsa.SlsaRequirement
    conditions: tuple[Condition, ...]
    layout: Any | None  # app.policy.layouts.LayoutRequirement
    vsa: Any | None = None  # app.policy.vsa.VsaRequirement

    @property
    def variables(self) -> frozenset[str]:
        """The CEL variables its conditions read."""
        return frozenset().union(*(c.variables for c in self.conditions))


@dataclass(frozen=True)
class CompiledPolicy:
    name: str
    file: str
    images: tuple[ImageGlob, ...]
    namespaces: tuple[NamespaceGlob, ...] | None
    mode: schema.Mode
    on_error: schema.OnError
    requirements: tuple[CompiledRequirement, ...]
    source: schema.ImagePolicy

    @property
    def registry(self) -> schema.RegistrySource | None:
        """The policy's fetch-on-miss settings, when it opted in."""
        source = self.source.spec.source
        registry = source.registry if source is not None else None
        return registry if registry is not None and registry.fetchOnMiss else None

    def selects(self, image: ImageRef, namespace: str | None) -> bool:
        if not any(glob.matches(image) for glob in self.images):
            return False
        # No namespace given (CLI, ad hoc evaluation): every policy that could apply does.
        if self.namespaces is None or namespace is None:
            return True
        return any_matches(self.namespaces, namespace) is not None


@dataclass(frozen=True)
class CompiledExemption:
    images: tuple[ImageGlob, ...]
    namespaces: tuple[NamespaceGlob, ...] | None
    reason: str
    expires_at: datetime | None  # first instant at which it no longer applies

    def applies(self, image: ImageRef, namespace: str | None) -> bool:
        if not any(glob.matches(image) for glob in self.images):
            return False
        if self.namespaces is None:
            return True
        return namespace is not None and any_matches(self.namespaces, namespace) is not None


@dataclass(frozen=True)
class CompiledConfig:
    no_match: schema.ConfigAction = "deny"
    tag_only: schema.TagOnlyAction = "deny"
    excluded_namespaces: tuple[NamespaceGlob, ...] = ()
    exemptions: tuple[CompiledExemption, ...] = ()
    break_glass: schema.BreakGlass = field(default_factory=schema.BreakGlass)
    break_glass_namespaces: tuple[NamespaceGlob, ...] = ()
    file: str | None = None  # None: no PolicyConfig, defaults
    source: schema.PolicyConfigSpec = field(default_factory=schema.PolicyConfigSpec)

    def break_glass_allowed(self, namespace: str) -> bool:
        """For the admission webhook: may a break-glass annotation bypass policy here?"""
        return (
            self.break_glass.enabled
            and any_matches(self.break_glass_namespaces, namespace) is not None
        )


@dataclass(frozen=True)
class LoadedPolicies:
    policies: tuple[CompiledPolicy, ...]
    config: CompiledConfig
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadContext:
    directory: Path
    trust_roots: frozenset[str]  # names verification knows: public-good, staging, trust/*.json
    ingest_keys: frozenset[bytes] | None  # DER keys ingest trusts; None: unknown


def load_policies(context: LoadContext) -> LoadedPolicies:
    """Compile every ``*.yaml``/``*.yml`` of the directory; raise PolicyLoadError listing all
    problems."""
    directory = context.directory
    errors: list[LoadError] = []
    warnings: list[str] = []
    policies: list[CompiledPolicy] = []
    configs: list[CompiledConfig] = []
    if not directory.is_dir():
        raise PolicyLoadError([LoadError("", "", None, f"{directory} is not a directory")])
    for path in policy_files(directory):
        rel = path.relative_to(directory).as_posix()
        for document in _read_documents(path, rel, errors):
            compiler = _Compiler(context, document, errors, warnings)
            compiled = compiler.compile()
            if isinstance(compiled, CompiledPolicy):
                policies.append(compiled)
            elif isinstance(compiled, CompiledConfig):
                configs.append(compiled)
    _check_unique(policies, configs, errors)
    if errors:
        raise PolicyLoadError(errors)
    config = configs[0] if configs else CompiledConfig()
    if not configs:
        warnings.append("no PolicyConfig: using noMatch=deny, tagOnly=deny")
    if not policies:
        warnings.append(f"no ImagePolicy: every image falls to noMatch={config.no_match}")
    return LoadedPolicies(tuple(policies), config, tuple(warnings))


def policy_files(directory: Path) -> list[Path]:
    # Top level only: keys/, trust/ and layouts/ hold other kinds of files.
    files = [*directory.glob("*.yaml"), *directory.glob("*.yml")]
    return sorted(p for p in files if p.is_file() and not p.name.startswith("."))


def _check_unique(
    policies: list[CompiledPolicy], configs: list[CompiledConfig], errors: list[LoadError]
) -> None:
    seen: dict[str, CompiledPolicy] = {}
    for policy in policies:
        first = seen.setdefault(policy.name, policy)
        if first is not policy:
            errors.append(
                LoadError(
                    policy.file,
                    "metadata.name",
                    None,
                    f"ImagePolicy {policy.name!r} is already defined in {first.file}",
                )
            )
    for extra in configs[1:]:
        errors.append(
            LoadError(
                extra.file or "",
                "kind",
                None,
                f"a policy directory holds one PolicyConfig; another is in {configs[0].file}",
            )
        )


# -- YAML with positions ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Document:
    file: str
    number: int
    node: yaml.Node
    data: Any

    def error(self, loc: Loc, message: str, line: int | None = None) -> LoadError:
        return LoadError(
            self.file,
            format_loc(loc),
            line if line is not None else self.line(loc),
            message,
            self.number,
        )

    def node_at(self, loc: Loc) -> yaml.Node:
        """The deepest node along ``loc`` (the parent, when the last key is missing)."""
        node = self.node
        for part in loc:
            child = _child(node, part)
            if child is None:
                break
            node = child
        return node

    def line(self, loc: Loc) -> int:
        return self.node_at(loc).start_mark.line + 1


def _child(node: yaml.Node, part: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode) and isinstance(part, str):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == part:
                return value  # type: ignore[no-any-return]
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]  # type: ignore[no-any-return]
    return None


def format_loc(loc: Iterable[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _read_documents(path: Path, rel: str, errors: list[LoadError]) -> Iterator[_Document]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(LoadError(rel, "", None, f"cannot read: {exc}"))
        return
    try:
        # The constructor already reads the text: a control character fails here.
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as exc:
        errors.append(_yaml_error(rel, exc, None))
        return
    number = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            number += 1
            if node is None:
                continue
            data = loader.construct_document(node)
            if data is None:
                continue  # an empty document ("---" at the end of a file)
            document = _Document(rel, number, node, data)
            duplicates = list(_duplicate_keys(node, ()))
            for loc, key_line, key in duplicates:
                errors.append(document.error(loc, f"duplicate key {key!r}", key_line))
            if not duplicates:
                yield document
    except yaml.YAMLError as exc:
        errors.append(_yaml_error(rel, exc, number or None))
    finally:
        loader.dispose()


def _yaml_error(rel: str, exc: yaml.YAMLError, document: int | None) -> LoadError:
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc)
    return LoadError(rel, "", line, f"invalid YAML: {problem}", document)


def _duplicate_keys(node: yaml.Node, loc: Loc) -> Iterator[tuple[Loc, int, str]]:
    # PyYAML keeps the last of two equal keys; in a policy that silently drops a rule.
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key)
            if name in seen:
                yield (*loc, name), key.start_mark.line + 1, name
            seen.add(name)
            yield from _duplicate_keys(value, (*loc, name))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, (*loc, index))


# -- compiling one document ---------------------------------------------------------------------


class _Compiler:
    def __init__(
        self,
        context: LoadContext,
        document: _Document,
        errors: list[LoadError],
        warnings: list[str],
    ) -> None:
        self.context = context
        self.document = document
        self.errors = errors
        self.warnings = warnings

    def fail(self, loc: Loc, message: str, line: int | None = None) -> None:
        self.errors.append(self.document.error(loc, message, line))

    def compile(self) -> CompiledPolicy | CompiledConfig | None:
        data = self.document.data
        if not isinstance(data, dict):
            self.fail((), "a policy document must be a mapping with apiVersion and kind")
            return None
        if data.get("apiVersion") != schema.API_VERSION:
            self.fail(
                ("apiVersion",),
                f"apiVersion must be {schema.API_VERSION}, found {data.get('apiVersion')!r}",
            )
            return None
        kind = data.get("kind")
        if kind == "ImagePolicy":
            model = self.validate(schema.ImagePolicy, data)
            if isinstance(model, schema.ImagePolicy):
                return self.policy(model)
            self.salvage(data)
            return None
        if kind == "PolicyConfig":
            model = self.validate(schema.PolicyConfig, data)
            return self.config(model) if isinstance(model, schema.PolicyConfig) else None
        self.fail(("kind",), f"kind must be ImagePolicy or PolicyConfig, found {kind!r}")
        return None

    def validate(self, model: type[BaseModel], data: dict[str, Any]) -> BaseModel | None:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors():
                loc = tuple(p for p in error["loc"] if isinstance(p, str | int))
                message = str(error["msg"]).removeprefix("Value error, ")
                self.fail(loc, message)
            return None

    @staticmethod
    def quietly(model: type[_M], data: object) -> _M | None:
        try:
            return model.model_validate(data)
        except ValidationError:
            return None

    def salvage(self, data: dict[str, Any]) -> None:
        """After schema errors, still check the parts that are valid on their own (globs,
        authorities, CEL, SLSA and layout specs), so one load lists every problem. Their
        schema errors were reported already; cross-references are not judged on a partial
        policy."""
        spec = data.get("spec")
        if not isinstance(spec, dict):
            return
        for key, compile_globs in (
            ("images", self.image_globs),
            ("namespaces", self.namespace_globs),
        ):
            globs = spec.get(key)
            if isinstance(globs, list) and all(isinstance(g, str) for g in globs):
                compile_globs(globs, ("spec", key))
        authorities = spec.get("authorities")
        if isinstance(authorities, list):
            for index, item in enumerate(authorities):
                authority = self.quietly(schema.Authority, item)
                if authority is not None:
                    self.authority(index, authority, {})
        requirements = spec.get("require")
        if isinstance(requirements, list):
            for index, item in enumerate(requirements):
                requirement = self.quietly(schema.Requirement, item)
                if requirement is not None:
                    self.requirement(index, requirement, None)

    # ImagePolicy ---------------------------------------------------------------------------

    def policy(self, model: schema.ImagePolicy) -> CompiledPolicy | None:
        before = len(self.errors)
        spec = model.spec
        images = self.image_globs(spec.images, ("spec", "images"))
        namespaces = (
            None
            if spec.namespaces is None
            else self.namespace_globs(spec.namespaces, ("spec", "namespaces"))
        )
        authorities = self.authorities(spec.authorities)
        requirements = tuple(
            r
            for index, requirement in enumerate(spec.require)
            if (r := self.requirement(index, requirement, authorities)) is not None
        )
        if len(self.errors) > before:
            return None
        return CompiledPolicy(
            name=model.metadata.name,
            file=self.document.file,
            images=images,
            namespaces=namespaces,
            mode=spec.mode,
            on_error=spec.onError,
            requirements=requirements,
            source=model,
        )

    def image_globs(self, globs: list[str], loc: Loc) -> tuple[ImageGlob, ...]:
        compiled = []
        for index, glob in enumerate(globs):
            try:
                compiled.append(compile_image_glob(glob))
            except ValueError as exc:
                self.fail((*loc, index), str(exc))
        return tuple(compiled)

    def namespace_globs(self, globs: list[str], loc: Loc) -> tuple[NamespaceGlob, ...]:
        compiled = []
        for index, glob in enumerate(globs):
            try:
                compiled.append(compile_namespace_glob(glob))
            except ValueError as exc:
                self.fail((*loc, index), str(exc))
        return tuple(compiled)

    def authorities(self, authorities: list[schema.Authority]) -> dict[str, Authority]:
        compiled: dict[str, Authority] = {}
        for index, authority in enumerate(authorities):
            self.authority(index, authority, compiled)
        return compiled

    def authority(
        self, index: int, authority: schema.Authority, compiled: dict[str, Authority]
    ) -> None:
        loc: Loc = ("spec", "authorities", index)
        if authority.name in compiled:
            self.fail((*loc, "name"), f"authority {authority.name!r} is defined twice")
            return
        result: Authority | None
        if authority.keyless is not None:
            result = self.keyless(authority.name, authority.keyless, (*loc, "keyless"))
        else:
            assert authority.key is not None  # the schema requires one of the two
            result = self.key(authority.name, authority.key, (*loc, "key"))
        if result is not None:
            compiled[authority.name] = result

    def keyless(self, name: str, spec: schema.Keyless, loc: Loc) -> KeylessAuthority | None:
        before = len(self.errors)
        if spec.trustRoot not in self.context.trust_roots:
            known = ", ".join(sorted(self.context.trust_roots))
            self.fail(
                (*loc, "trustRoot"),
                f"unknown trust root {spec.trustRoot!r} (known: {known}; add "
                f"trust/{spec.trustRoot}.json to the policy directory)",
            )
        identities = []
        for index, identity in enumerate(spec.identities):
            where = (*loc, "identities", index)
            identities.append(
                Identity(
                    identity.issuer,
                    self.regexp(identity.issuerRegExp, (*where, "issuerRegExp")),
                    identity.subject,
                    self.regexp(identity.subjectRegExp, (*where, "subjectRegExp")),
                )
            )
        for claims_key, claims in (("claims", spec.claims), ("claimsRegExp", spec.claimsRegExp)):
            for claim in claims:
                if claim not in _FULCIO_CLAIMS and not claim.startswith(FULCIO_ARC):
                    known = ", ".join(sorted(_FULCIO_CLAIMS))
                    self.fail(
                        (*loc, claims_key, claim),
                        f"unknown Fulcio claim {claim!r} (known: {known}, or a dotted "
                        f"{FULCIO_ARC}* OID)",
                    )
        claims_regexp = tuple(
            (claim, pattern)
            for claim, text in spec.claimsRegExp.items()
            if (pattern := self.regexp(text, (*loc, "claimsRegExp", claim))) is not None
        )
        if len(self.errors) > before:
            return None
        evidence = EvidenceRules(
            require_inclusion_proof=spec.requireInclusionProof,
            min_bundle_version=(
                tuple(int(p) for p in spec.minBundleVersion.split("."))
                if spec.minBundleVersion
                else None
            ),
            verified_timestamps=spec.verifiedTimestamps,
        )
        return KeylessAuthority(
            name,
            spec.trustRoot,
            tuple(identities),
            tuple(spec.claims.items()),
            claims_regexp,
            evidence,
        )

    def regexp(self, text: str | None, loc: Loc) -> Any:
        if text is None:
            return None
        try:
            return compile_regexp(text)
        except ValueError as exc:
            self.fail(loc, str(exc))
            return None

    def key(self, name: str, spec: schema.KeyRef, loc: Loc) -> KeyAuthority | None:
        if spec.data is not None:
            raw, source, where = spec.data.encode(), "inline key", (*loc, "data")
        else:
            assert spec.file is not None
            where = (*loc, "file")
            path = self.resolve(spec.file, where)
            if path is None:
                return None
            source = spec.file
            try:
                raw = path.read_bytes()
            except OSError as exc:
                self.fail(where, f"cannot read key file {spec.file}: {exc.strerror}")
                return None
        try:
            keys = load_public_keys(raw, source)
        except ValueError as exc:
            self.fail(where, str(exc))
            return None
        trusted = self.context.ingest_keys
        if trusted is not None and not set(keys) & trusted:
            self.warnings.append(
                f"{self.document.file}: authority {name!r}: {source} is not under keys/, so "
                "ingest rejects what it signs and this authority can never match"
            )
        return KeyAuthority(name, keys, source)

    def resolve(self, relative: str, loc: Loc) -> Path | None:
        directory = self.context.directory.resolve()
        path = (directory / relative).resolve()
        if Path(relative).is_absolute() or not path.is_relative_to(directory):
            self.fail(loc, f"{relative} must be a path inside the policy directory")
            return None
        if not path.is_file():
            self.fail(loc, f"file {relative} does not exist in the policy directory")
            return None
        return path

    def requirement(
        self, index: int, spec: schema.Requirement, authorities: dict[str, Authority] | None
    ) -> CompiledRequirement | None:
        """``authorities`` None: the policy's authorities are unknown (schema errors), so
        references to them are not judged."""
        loc: Loc = ("spec", "require", index)
        before = len(self.errors)
        predicate_type = spec.predicateType
        if predicate_type is not None:
            predicate_type = schema.PREDICATE_TYPE_ALIASES.get(predicate_type, predicate_type)
        if spec.layout is not None:
            layout = self.layout(spec.layout, (*loc, "layout"))
            name = spec.name or f"layout {spec.layout.get('file', '')}".strip()
            if len(self.errors) > before:
                return None
            return CompiledRequirement(index, name, None, (), 1, None, (), layout)
        if spec.vsa is not None:
            return self.vsa_requirement(index, spec, spec.vsa, (*loc, "vsa"))
        chosen = self.chosen_authorities(spec, authorities, loc) if authorities is not None else ()
        slsa = self.slsa(spec.slsa, (*loc, "slsa")) if spec.slsa is not None else None
        conditions = tuple(
            c
            for j, condition in enumerate(spec.conditions)
            if (c := self.condition(condition, (*loc, "conditions", j))) is not None
        )
        if len(self.errors) > before:
            return None
        name = spec.name or (predicate_type or "signature")
        return CompiledRequirement(
            index, name, predicate_type, chosen, spec.count, slsa, conditions, None
        )

    def vsa_requirement(
        self, index: int, spec: schema.Requirement, vsa: dict[str, Any], loc: Loc
    ) -> CompiledRequirement | None:
        """A VSA from the verifier whose key is ``vsa.publicKey``: one key authority, the VSA v1
        predicate type, and the checks of ``app.policy.vsa``."""
        from app.policy.vsa import VSA_V1, parse_vsa_requirement

        before = len(self.errors)
        try:
            requirement = parse_vsa_requirement(vsa)
        except (ValueError, TypeError) as exc:
            self.fail(*_refine(loc, "vsa", str(exc)))
            requirement = None
        public_key = vsa.get("publicKey")
        if isinstance(public_key, str):
            # The flat spelling: a file of the policy directory, or the PEM itself.
            is_pem = public_key.lstrip().startswith("-----BEGIN")
            public_key = {"data": public_key} if is_pem else {"file": public_key}
        key_spec = self.quietly(schema.KeyRef, public_key)
        authority = None
        if key_spec is None and "publicKey" in vsa:
            self.fail(
                (*loc, "publicKey"),
                "must be a file of the policy directory (keys/<name>.pub), an inline PEM, "
                "{file: ...} or {data: ...}",
            )
        elif key_spec is not None:
            authority = self.key("vsa.publicKey", key_spec, (*loc, "publicKey"))
        conditions = tuple(
            c
            for j, condition in enumerate(spec.conditions)
            if (c := self.condition(condition, ("spec", "require", index, "conditions", j)))
            is not None
        )
        if len(self.errors) > before or requirement is None or authority is None:
            return None
        name = spec.name or f"vsa from {requirement.verifier_id}"
        return CompiledRequirement(
            index, name, VSA_V1, (authority,), 1, None, conditions, None, requirement
        )

    def chosen_authorities(
        self, spec: schema.Requirement, authorities: dict[str, Authority], loc: Loc
    ) -> tuple[Authority, ...]:
        picked: list[Authority] = []
        if spec.authorities is None:
            picked = list(authorities.values())
            if not picked and not any(e.path.startswith("spec.authorities") for e in self.errors):
                self.fail(loc, "no authorities: define spec.authorities (who may sign)")
        else:
            for j, name in enumerate(spec.authorities):
                if name in authorities:
                    picked.append(authorities[name])
                else:
                    known = ", ".join(authorities) or "none defined"
                    self.fail(
                        (*loc, "authorities", j), f"unknown authority {name!r} (known: {known})"
                    )
            if not spec.authorities:
                self.fail((*loc, "authorities"), "an empty authorities list can never be satisfied")
        # Keys are countable: k distinct signers need k keys. Keyless identities are not.
        keys = {der for a in picked if isinstance(a, KeyAuthority) for der in a.keys}
        if picked and all(isinstance(a, KeyAuthority) for a in picked) and spec.count > len(keys):
            self.fail(
                (*loc, "count"),
                f"count {spec.count} can never be met: the authorities hold {len(keys)} key(s)",
            )
        return tuple(picked)

    def slsa(self, spec: dict[str, Any], loc: Loc) -> Any:
        try:
            from app.policy.slsa import parse_slsa_requirement
        except ImportError:
            self.fail(loc, "SLSA checks are not available in this build (app.policy.slsa)")
            return None
        try:
            return parse_slsa_requirement(spec)
        except (ValueError, TypeError) as exc:
            self.fail(*_refine(loc, "slsa", str(exc)))
            return None

    def layout(self, spec: dict[str, Any], loc: Loc) -> Any:
        try:
            from app.policy.layouts import load_layout_requirement
        except ImportError:
            self.fail(loc, "in-toto layouts are not available in this build (app.policy.layouts)")
            return None
        try:
            return load_layout_requirement(spec, self.context.directory)
        except (ValueError, TypeError, OSError) as exc:
            self.fail(*_refine(loc, "layout", str(exc)))
            return None

    def condition(self, spec: schema.Condition, loc: Loc) -> Condition | None:
        try:
            return compile_condition(spec.expression, spec.message)
        except ConditionError as exc:
            where = (*loc, "expression")
            self.fail(where, exc.message, self.expression_line(where, exc.line))
            return None

    def expression_line(self, loc: Loc, cel_line: int | None) -> int:
        node = self.document.node_at(loc)
        line = node.start_mark.line + 1
        if cel_line is None:
            return line
        # A block scalar ("|" or ">") starts on the line after its indicator.
        block = isinstance(node, yaml.ScalarNode) and node.style in ("|", ">")
        return line + cel_line - 1 + (1 if block else 0)

    # PolicyConfig --------------------------------------------------------------------------

    def config(self, model: schema.PolicyConfig) -> CompiledConfig | None:
        before = len(self.errors)
        spec = model.spec
        excluded = self.namespace_globs(spec.excludedNamespaces, ("spec", "excludedNamespaces"))
        exemptions = []
        for index, exemption in enumerate(spec.exemptions):
            loc: Loc = ("spec", "exemptions", index)
            images = self.image_globs(exemption.images, (*loc, "images"))
            namespaces = (
                None
                if exemption.namespaces is None
                else self.namespace_globs(exemption.namespaces, (*loc, "namespaces"))
            )
            expires_at = expiry_instant(exemption.expires)
            if expires_at is not None and expires_at <= datetime.now(UTC):
                self.warnings.append(
                    f"{self.document.file}: exemption {index} ({', '.join(exemption.images)}) "
                    f"expired at {expires_at.isoformat()} and no longer applies"
                )
            exemptions.append(CompiledExemption(images, namespaces, exemption.reason, expires_at))
        glass = self.namespace_globs(
            spec.breakGlass.namespaces, ("spec", "breakGlass", "namespaces")
        )
        if len(self.errors) > before:
            return None
        return CompiledConfig(
            no_match=spec.noMatch,
            tag_only=spec.tagOnly,
            excluded_namespaces=excluded,
            exemptions=tuple(exemptions),
            break_glass=spec.breakGlass,
            break_glass_namespaces=glass,
            file=self.document.file,
            source=spec,
        )


_SUB_PATH = re.compile(r"([A-Za-z0-9_-]+)|\[(\d+)\]")


def _refine(loc: Loc, prefix: str, message: str) -> tuple[Loc, str]:
    """Turn "slsa.builderId.prefix: must be ..." into the YAML path of that key, so the error
    carries its line, not the line of the whole ``slsa:`` mapping."""
    head, sep, rest = message.partition(": ")
    if not sep or not head.startswith(prefix) or " " in head:
        return loc, message
    if head[len(prefix) : len(prefix) + 1] not in ("", ".", "["):
        # "layouts/root.layout: ..." names a file, not a key under "layout".
        return loc, message
    parts: list[str | int] = []
    for match in _SUB_PATH.finditer(head[len(prefix) :]):
        parts.append(match.group(1) if match.group(1) else int(match.group(2)))
    return (*loc, *parts), rest


def expiry_instant(expires: date | datetime | None) -> datetime | None:
    """A date is inclusive (the exemption holds through that day, UTC); a timestamp without a
    zone is UTC, as YAML timestamps are."""
    if expires is None:
        return None
    if isinstance(expires, datetime):
        return expires if expires.tzinfo else expires.replace(tzinfo=UTC)
    return datetime.combine(expires + timedelta(days=1), time(0), tzinfo=UTC)
