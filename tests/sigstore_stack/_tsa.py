"""An RFC 3161 timestamp authority that answers in memory with real, DER-encoded TimeStampResps."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.sigstore_stack import _der
from tests.sigstore_stack._pki import (
    CA_NOT_AFTER,
    CA_NOT_BEFORE,
    derive_ec_key,
    make_root,
    signing_key_usage,
)

_SHA256 = "2.16.840.1.101.3.4.2.1"
_ECDSA_SHA256 = "1.2.840.10045.4.3.2"
_SIGNED_DATA = "1.2.840.113549.1.7.2"
_TST_INFO = "1.2.840.113549.1.9.16.1.4"
_ATTR_CONTENT_TYPE = "1.2.840.113549.1.9.3"
_ATTR_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_ATTR_SIGNING_TIME = "1.2.840.113549.1.9.5"
_ATTR_SIGNING_CERT_V2 = "1.2.840.113549.1.9.16.2.47"
_TSA_POLICY = "1.3.6.1.4.1.57264.2"  # the policy OID Sigstore's timestamp-authority uses


@dataclass(frozen=True)
class TimestampAuthority:
    """Root + timestamping leaf (critical EKU id-kp-timeStamping, as RFC 3161 demands)."""

    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    signer_key: ec.EllipticCurvePrivateKey
    signer: x509.Certificate

    @classmethod
    def create(cls, seed: str, organization: str) -> TimestampAuthority:
        root_key = derive_ec_key(f"{seed}/tsa-root", ec.SECP384R1())
        root = make_root(
            f"{seed}/tsa-root",
            root_key,
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                    x509.NameAttribute(NameOID.COMMON_NAME, "sigstore-tsa-selfsigned"),
                ]
            ),
        )
        signer_key = derive_ec_key(f"{seed}/tsa-signer", ec.SECP256R1())
        public_key = signer_key.public_key()
        signer = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                        x509.NameAttribute(NameOID.COMMON_NAME, "sigstore-tsa"),
                    ]
                )
            )
            .issuer_name(root.subject)
            .public_key(public_key)
            .serial_number(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:16], "big"))
            .not_valid_before(CA_NOT_BEFORE)
            .not_valid_after(CA_NOT_AFTER)
            .add_extension(signing_key_usage(), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
                critical=False,
            )
            .sign(root_key, hashes.SHA384(), ecdsa_deterministic=True)
        )
        return cls(root_key, root, signer_key, signer)

    @property
    def chain(self) -> list[x509.Certificate]:
        """Leaf-to-root order, as a trusted root's ``timestampAuthorities`` lists it."""
        return [self.signer, self.root]

    def timestamp(
        self,
        message: bytes,
        gen_time: datetime,
        *,
        serial: int,
        signing_key: ec.EllipticCurvePrivateKey | None = None,
    ) -> bytes:
        """A granted TimeStampResp over SHA-256(``message``) at ``gen_time``.

        ``signing_key`` replaces the TSA key while keeping its certificate: a forged token.
        """
        tst_info = _der.sequence(
            _der.integer(1),
            _der.oid(_TSA_POLICY),
            _der.sequence(  # messageImprint
                _der.sequence(_der.oid(_SHA256), _der.null()),
                _der.octet_string(hashlib.sha256(message).digest()),
            ),
            _der.integer(serial),
            _der.generalized_time(gen_time),
            _der.sequence(_der.integer(1)),  # accuracy: 1 second
            _der.explicit(0, _der.explicit(4, self.signer.subject.public_bytes())),
        )
        issuer_and_serial = _der.sequence(
            self.signer.issuer.public_bytes(), _der.integer(self.signer.serial_number)
        )
        ess_cert_id_v2 = _der.sequence(
            _der.octet_string(
                hashlib.sha256(self.signer.public_bytes(serialization.Encoding.DER)).digest()
            ),
            _der.sequence(  # issuerSerial
                _der.sequence(_der.explicit(4, self.signer.issuer.public_bytes())),
                _der.integer(self.signer.serial_number),
            ),
        )
        attributes = [
            _der.sequence(_der.oid(_ATTR_CONTENT_TYPE), _der.set_of(_der.oid(_TST_INFO))),
            _der.sequence(_der.oid(_ATTR_SIGNING_TIME), _der.set_of(_der.utc_time(gen_time))),
            _der.sequence(
                _der.oid(_ATTR_MESSAGE_DIGEST),
                _der.set_of(_der.octet_string(hashlib.sha256(tst_info).digest())),
            ),
            _der.sequence(
                _der.oid(_ATTR_SIGNING_CERT_V2),
                _der.set_of(_der.sequence(_der.sequence(ess_cert_id_v2))),
            ),
        ]
        # CMS signs the attributes DER-encoded as a SET OF, then stores them as [0] IMPLICIT.
        signed_attrs = _der.set_of(*attributes)
        signature = (signing_key or self.signer_key).sign(signed_attrs, ec.ECDSA(hashes.SHA256()))
        signer_info = _der.sequence(
            _der.integer(1),
            issuer_and_serial,
            _der.sequence(_der.oid(_SHA256)),
            _der.implicit_constructed(0, signed_attrs),
            _der.sequence(_der.oid(_ECDSA_SHA256)),
            _der.octet_string(signature),
        )
        signed_data = _der.sequence(
            _der.integer(3),
            _der.set_of(_der.sequence(_der.oid(_SHA256))),
            _der.sequence(_der.oid(_TST_INFO), _der.explicit(0, _der.octet_string(tst_info))),
            _der.tlv(0xA0, self.signer.public_bytes(serialization.Encoding.DER)),
            _der.set_of(signer_info),
        )
        token = _der.sequence(_der.oid(_SIGNED_DATA), _der.explicit(0, signed_data))
        return _der.sequence(_der.sequence(_der.integer(0)), token)
