"""Image references, digests and globs (``*`` within a segment, ``**`` across segments)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.policy.matching import (
    compile_image_glob,
    compile_namespace_glob,
    glob_to_regex,
    parse_image,
)

HEX = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("reference", "name", "tag"),
    [
        ("nginx", "docker.io/library/nginx", None),
        ("nginx:1.25", "docker.io/library/nginx", "1.25"),
        ("library/nginx", "docker.io/library/nginx", None),
        ("index.docker.io/nginx", "docker.io/library/nginx", None),
        ("registry-1.docker.io/acme/app:v1", "docker.io/acme/app", "v1"),
        ("acme/app", "docker.io/acme/app", None),
        ("localhost:5000/app:dev", "localhost:5000/app", "dev"),
        ("GHCR.IO/acme/app", "ghcr.io/acme/app", None),
        ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause", "3.9"),
    ],
)
def test_references_are_normalized(reference: str, name: str, tag: str | None) -> None:
    image = parse_image(reference)
    assert image.name == name
    assert image.tag == tag
    assert image.digest is None


def test_digest_is_extracted_and_lowercased() -> None:
    image = parse_image(f"ghcr.io/acme/app:v1@sha256:{HEX.upper()}")
    assert image.digest == ("sha256", HEX)
    assert image.tag == "v1"
    assert image.reference == f"ghcr.io/acme/app:v1@sha256:{HEX}"


@pytest.mark.parametrize(
    ("reference", "problem"),
    [
        ("", "empty"),
        ("ghcr.io/acme/app@sha256:abc", "64 hex digits"),
        ("ghcr.io/acme/app@md5:" + "a" * 32, "unsupported digest"),
        ("ghcr.io/Acme/app", "bad repository component"),
        ("ghcr.io/acme/app:bad tag", "whitespace"),
        ("ghcr.io/acme/app:-x", "bad tag"),
    ],
)
def test_invalid_references_say_why(reference: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_image(reference)


@pytest.mark.parametrize(
    ("glob", "reference", "matches"),
    [
        ("ghcr.io/acme/**", "ghcr.io/acme/app", True),
        ("ghcr.io/acme/**", "ghcr.io/acme/team/app", True),
        ("ghcr.io/acme/**", "ghcr.io/acme-evil/app", False),
        ("ghcr.io/acme/*", "ghcr.io/acme/app", True),
        ("ghcr.io/acme/*", "ghcr.io/acme/team/app", False),
        ("ghcr.io/**/app", "ghcr.io/app", True),
        ("ghcr.io/**/app", "ghcr.io/a/b/app", True),
        ("nginx", "docker.io/library/nginx:1.25", True),
        ("docker.io/library/nginx", "nginx", True),
        ("index.docker.io/library/*", "busybox", True),
        ("acme/*", "acme/app", True),
        ("registry.k8s.io/pause*", "registry.k8s.io/pause:3.9", True),
        ("registry.k8s.io/pause*", "registry.k8s.io/pause-evil/x", False),
        ("**", "quay.io/x/y", True),
        ("*/acme/*", "quay.io/acme/app", True),
        ("nginx:1.*", "nginx:1.25", True),  # a tag in the glob matches the whole reference
        ("nginx:1.*", "nginx:2.0", False),
        (f"ghcr.io/acme/app@sha256:{HEX}", f"ghcr.io/acme/app@sha256:{HEX}", True),
    ],
)
def test_image_globs(glob: str, reference: str, matches: bool) -> None:
    assert compile_image_glob(glob).matches(parse_image(reference)) is matches


@pytest.mark.parametrize("glob", ["ghcr.io/acme/[ab]", "ghcr.io/acme/app?", "", "a b"])
def test_invalid_globs_are_rejected(glob: str) -> None:
    with pytest.raises(ValueError, match="invalid image glob"):
        compile_image_glob(glob)


@pytest.mark.parametrize(
    ("glob", "namespace", "matches"),
    [
        ("prod-*", "prod-a", True),
        ("prod-*", "staging", False),
        ("*", "x", True),
        ("kube-system", "kube-system", True),
        ("*-system", "kube-system", True),
    ],
)
def test_namespace_globs(glob: str, namespace: str, matches: bool) -> None:
    assert compile_namespace_glob(glob).matches(namespace) is matches


# -- properties ---------------------------------------------------------------------------------

segment = st.text(alphabet="abc.-_", min_size=1, max_size=4)
paths = st.lists(segment, min_size=1, max_size=5).map("/".join)
glob_parts = st.lists(st.sampled_from(["a", "b", "/", "*", "**", "."]), max_size=8).map("".join)
text = st.text(alphabet="ab/.", max_size=8)


def reference_match(glob: str, value: str, at_start: bool = True) -> bool:
    """An independent, slow matcher: ``*`` is any run without "/", ``**`` any run at all,
    and a whole ``/**/`` segment (``**`` standing alone between slashes, or leading) may also
    collapse to one "/"."""
    if not glob:
        return not value
    if glob.startswith("/**/") and reference_match("/" + glob[4:], value, at_start):
        return True
    if at_start and glob.startswith("**/") and reference_match(glob[3:], value, True):
        return True
    if glob.startswith("**"):
        rest = glob[2:].lstrip("*")
        return any(reference_match(rest, value[i:], False) for i in range(len(value) + 1))
    if glob.startswith("*"):
        limit = value.find("/") if "/" in value else len(value)
        return any(reference_match(glob[1:], value[i:], False) for i in range(limit + 1))
    return (
        bool(value) and glob[0] == value[0] and reference_match(glob[1:], value[1:], glob[0] == "/")
    )


@given(glob_parts, text)
def test_glob_translation_agrees_with_a_reference_matcher(glob: str, value: str) -> None:
    expected = reference_match(glob, value)
    assert (re.fullmatch(glob_to_regex(glob), value) is not None) is expected


@given(paths)
def test_a_literal_glob_matches_only_itself(path: str) -> None:
    pattern = re.compile(glob_to_regex(path))
    assert pattern.fullmatch(path)
    assert not pattern.fullmatch(path + "x")
    assert not pattern.fullmatch(path + "/x")


@given(st.lists(segment, min_size=2, max_size=5), st.data())
def test_star_replaces_exactly_one_segment(segments: list[str], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(segments) - 1))
    glob = "/".join("*" if i == index else s for i, s in enumerate(segments))
    pattern = re.compile(glob_to_regex(glob))
    assert pattern.fullmatch("/".join(segments))
    longer = [*segments[:index], segments[index], "extra", *segments[index + 1 :]]
    assert not pattern.fullmatch("/".join(longer))


@given(st.lists(segment, min_size=2, max_size=6), st.data())
def test_double_star_spans_any_number_of_segments(segments: list[str], data: st.DataObject) -> None:
    start = data.draw(st.integers(1, len(segments) - 1))
    end = data.draw(st.integers(start, len(segments)))
    glob = "/".join([*segments[:start], "**", *segments[end:]])
    matched = re.fullmatch(glob_to_regex(glob), "/".join(segments)) is not None
    # "**" may stand for zero segments ("a/**/b" matches "a/b"), but a trailing "/**" needs
    # something after the slash, as in gitignore.
    assert matched or start == end == len(segments)


@given(paths)
def test_normalization_makes_spelling_irrelevant(repo: str) -> None:
    repo = re.sub(r"[^a-z0-9/]", "", repo).strip("/") or "x"
    repo = re.sub("/+", "/", repo)
    short = parse_image(repo)
    assert parse_image(f"docker.io/{short.repository}").name == short.name
    assert parse_image(f"index.docker.io/{short.repository}").name == short.name
    glob = compile_image_glob(short.name)
    assert glob.matches(short)


def test_double_star_segment_keeps_the_star_after_it() -> None:
    # Regression: "**/*" used to swallow the final "*", so it did not match "a".
    import re

    from app.policy.matching import glob_to_regex

    pattern = re.compile(glob_to_regex("**/*"))
    assert pattern.fullmatch("a")
    assert pattern.fullmatch("a/b")
