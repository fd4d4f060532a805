"""Response models of the VSA endpoints (so the OpenAPI says what comes back)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class DsseSignature(BaseModel):
    keyid: str = Field(description="sha256 hex of the signing key's DER SubjectPublicKeyInfo")
    sig: str = Field(description="base64 signature over the DSSE PAE")


class DsseEnvelope(BaseModel):
    payloadType: Literal["application/vnd.in-toto+json"]
    payload: str = Field(description="base64 in-toto Statement v1 with a VSA v1 predicate")
    signatures: list[DsseSignature]


class PublicKeyHint(BaseModel):
    hint: str


class BundleMaterial(BaseModel):
    publicKey: PublicKeyHint
    tlogEntries: list[dict[str, object]] = Field(default_factory=list)


class SigstoreBundle(BaseModel):
    mediaType: str
    verificationMaterial: BundleMaterial
    dsseEnvelope: DsseEnvelope


class PublishedKeyView(BaseModel):
    keyId: str
    algorithm: Literal["ecdsa-p256", "ed25519"]
    publicKey: str = Field(description="PEM SubjectPublicKeyInfo")
    active: bool = Field(description="false: rotated out, kept to verify older VSAs")


class PublicKeys(BaseModel):
    keyId: str = Field(description="the key that signs new VSAs")
    algorithm: Literal["ecdsa-p256", "ed25519"]
    publicKey: str
    verifierId: str
    keys: list[PublishedKeyView] = Field(description="every published key, active first")
