"""Reading a request body under a size limit, refusing as soon as the limit is known exceeded."""

from __future__ import annotations

from fastapi import Request


class BodyTooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"body of at least {size} bytes")
        self.size = size  # declared, or read so far when the limit was crossed


async def read_limited(request: Request, limit: int) -> bytes:
    """The body; BodyTooLarge when Content-Length or the bytes received exceed ``limit``."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(int(declared))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(size)
        chunks.append(chunk)
    return b"".join(chunks)
