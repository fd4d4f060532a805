"""Checkpoints in the signed-note format of Go's transparency logs, Sigstore and Rekor.

A checkpoint is the note body ``<origin>\\n<tree size>\\n<base64 root hash>\\n`` followed by a
blank line and signature lines ``\\u2014 <name> <base64(4-byte key hash || signature)>\\n``
(golang.org/x/mod/sumdb/note, transparency-dev/formats log/README.md). The signature is
Ed25519 over the body bytes, and the key hash binds the key to the signer's name.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from app.audit.keys import key_hash

EM_DASH = "\u2014"
_SIZE = re.compile(r"^(0|[1-9][0-9]{0,19})$")
_SIG_LINE = re.compile(rf"^{EM_DASH} (\S+) (\S+)$")


class CheckpointError(ValueError):
    """A note that is malformed, or whose signature does not verify."""


def valid_name(name: str) -> bool:
    # The note spec forbids whitespace and '+' (the verifier-key separator) in key names.
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    tree_size: int
    root_hash: bytes
    extensions: tuple[str, ...] = field(default=())

    def body(self) -> str:
        lines = [self.origin, str(self.tree_size), base64.b64encode(self.root_hash).decode()]
        return "".join(line + "\n" for line in (*lines, *self.extensions))

    def sign(self, name: str, private_key: Ed25519PrivateKey) -> str:
        """The complete signed note text."""
        if not valid_name(name):
            raise CheckpointError(f"invalid signer name {name!r}: no spaces and no '+'")
        body = self.body()
        signature = private_key.sign(body.encode())
        blob = base64.b64encode(key_hash(name, private_key.public_key()) + signature).decode()
        return f"{body}\n{EM_DASH} {name} {blob}\n"


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_hash: bytes
    signature: bytes


def parse_body(body: str) -> Checkpoint:
    if not body.endswith("\n"):
        raise CheckpointError("checkpoint body must end with a newline")
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError("checkpoint needs an origin, a tree size and a root hash line")
    origin, size, root, *extensions = lines
    if not origin:
        raise CheckpointError("checkpoint origin is empty")
    if not _SIZE.match(size):
        raise CheckpointError(f"checkpoint tree size {size!r} is not a decimal number")
    try:
        root_hash = base64.b64decode(root, validate=True)
    except binascii.Error as exc:
        raise CheckpointError("checkpoint root hash is not base64") from exc
    if len(root_hash) != 32:
        raise CheckpointError("checkpoint root hash is not 32 bytes")
    if any(not line for line in extensions):
        raise CheckpointError("checkpoint has an empty extension line")
    return Checkpoint(origin, int(size), root_hash, tuple(extensions))


def parse_note(text: str) -> tuple[Checkpoint, str, list[NoteSignature]]:
    """(checkpoint, body, signatures); only the shape is checked here, not the signatures."""
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise CheckpointError("note contains control characters")
    if text.count("\n\n") != 1:
        raise CheckpointError("note must have exactly one blank line before its signatures")
    split = text.index("\n\n")
    body, block = text[: split + 1], text[split + 2 :]
    if not block.endswith("\n"):
        raise CheckpointError("note signature block must end with a newline")
    signatures: list[NoteSignature] = []
    for line in block[:-1].split("\n"):
        match = _SIG_LINE.match(line)
        if not match:
            raise CheckpointError(f"malformed note signature line {line[:80]!r}")
        try:
            blob = base64.b64decode(match.group(2), validate=True)
        except binascii.Error as exc:
            raise CheckpointError("note signature is not base64") from exc
        if len(blob) < 5:
            raise CheckpointError("note signature is too short")
        signatures.append(NoteSignature(match.group(1), blob[:4], blob[4:]))
    return parse_body(body), body, signatures


def verify_note(text: str, public_key: Ed25519PublicKey, name: str | None = None) -> Checkpoint:
    """The checkpoint, if ``public_key`` (as signer ``name``, default the origin) signed it."""
    checkpoint, body, signatures = parse_note(text)
    signer = name or checkpoint.origin
    expected = key_hash(signer, public_key)
    mine = [s for s in signatures if s.name == signer and s.key_hash == expected]
    if not mine:
        raise CheckpointError(f"checkpoint carries no signature by {signer}'s key")
    for sig in mine:
        try:
            public_key.verify(sig.signature, body.encode())
        except InvalidSignature as exc:
            raise CheckpointError(f"checkpoint signature by {signer} is invalid") from exc
    return checkpoint
