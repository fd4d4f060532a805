"""A minimal DER encoder: just enough ASN.1 to build RFC 3161 responses and X.509 extension values.

`cryptography` can parse these structures but cannot build a CMS SignedData whose content type
is TSTInfo, and no ASN.1 library is installed, so the few constructs needed are encoded by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime


def tlv(tag: int, content: bytes) -> bytes:
    """One DER element: tag byte, definite length, content."""
    length = len(content)
    if length < 0x80:
        return bytes([tag, length]) + content
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(encoded)]) + encoded + content


def sequence(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def set_of(*items: bytes) -> bytes:
    # DER requires SET OF members in ascending order of their encodings; signed CMS attributes
    # are hashed in this form, so an unsorted set would produce an unverifiable signature.
    return tlv(0x31, b"".join(sorted(items)))


def integer(value: int) -> bytes:
    if value == 0:
        return tlv(0x02, b"\x00")
    length = (value.bit_length() + 8) // 8  # +8 keeps a leading zero bit for positive values
    return tlv(0x02, value.to_bytes(length, "big", signed=True))


def boolean(value: bool) -> bytes:
    return tlv(0x01, b"\xff" if value else b"\x00")


def null() -> bytes:
    return b"\x05\x00"


def octet_string(value: bytes) -> bytes:
    return tlv(0x04, value)


def utf8_string(value: str) -> bytes:
    return tlv(0x0C, value.encode())


def oid(dotted: str) -> bytes:
    arcs = [int(part) for part in dotted.split(".")]
    body = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return tlv(0x06, bytes(body))


def generalized_time(moment: datetime) -> bytes:
    return tlv(0x18, moment.astimezone(UTC).strftime("%Y%m%d%H%M%SZ").encode())


def utc_time(moment: datetime) -> bytes:
    return tlv(0x17, moment.astimezone(UTC).strftime("%y%m%d%H%M%SZ").encode())


def explicit(number: int, content: bytes) -> bytes:
    """``[number] EXPLICIT``: a constructed context-specific wrapper around one element."""
    return tlv(0xA0 | number, content)


def implicit_constructed(number: int, element: bytes) -> bytes:
    """``[number] IMPLICIT`` for a constructed element (SET/SEQUENCE): retag, keep the content."""
    _, content = split_tlv(element)
    return tlv(0xA0 | number, content)


def split_tlv(element: bytes) -> tuple[int, bytes]:
    """The tag and content of a single DER element (short- or long-form length)."""
    tag, first = element[0], element[1]
    if first < 0x80:
        return tag, element[2 : 2 + first]
    size = first & 0x7F
    length = int.from_bytes(element[2 : 2 + size], "big")
    return tag, element[2 + size : 2 + size + length]
