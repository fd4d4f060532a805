"""A private Sigstore test stack: real bundles, signed by a Fulcio/CT/Rekor/TSA built in memory.

Typical use: ``stack = SigstoreTestStack.get()``, then ``bundle_json = stack.sign_dsse(statement)``
(or ``tamper="bad_sct"`` etc.), then the unmodified sigstore-python
``Verifier(trusted_root=stack.trusted_root).verify_dsse(Bundle.from_json(bundle_json), policy)``.
See ``SigstoreTestStack`` for every option and tamper.
"""

from tests.sigstore_stack._pki import FULCIO_EXTENSION_OIDS
from tests.sigstore_stack.stack import (
    BARE_DSSE_TAMPERS,
    BUNDLE_MEDIA_TYPE,
    CERTIFICATE_TAMPERS,
    DEFAULT_IDENTITY,
    DEFAULT_ISSUER,
    INTOTO_PAYLOAD_TYPE,
    KEY_TAMPERS,
    TAMPERS,
    TRUSTED_ROOT_MEDIA_TYPE,
    SigningKey,
    SigstoreTestStack,
    Tamper,
    decode_bundle,
    github_actions_extensions,
    pae,
    public_key_hint,
    sign_with,
)

__all__ = [
    "BARE_DSSE_TAMPERS",
    "BUNDLE_MEDIA_TYPE",
    "CERTIFICATE_TAMPERS",
    "DEFAULT_IDENTITY",
    "DEFAULT_ISSUER",
    "FULCIO_EXTENSION_OIDS",
    "INTOTO_PAYLOAD_TYPE",
    "KEY_TAMPERS",
    "TAMPERS",
    "TRUSTED_ROOT_MEDIA_TYPE",
    "SigningKey",
    "SigstoreTestStack",
    "Tamper",
    "decode_bundle",
    "github_actions_extensions",
    "pae",
    "public_key_hint",
    "sign_with",
]
