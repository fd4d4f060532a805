"""The floor for bench/admission.py: a bare FastAPI endpoint that answers every AdmissionReview
with "allowed", doing nothing else (no auth, no database, no policy), served by uvicorn exactly
as ``provenant serve`` serves Provenant.

    .venv/bin/python bench/echo_app.py --port 9443 --tls-cert tls.crt --tls-key tls.key
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request

HERE = Path(__file__).resolve().parent


def create_app() -> FastAPI:
    app = FastAPI(title="AdmissionReview echo")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/k8s/validate")
    async def validate(request: Request) -> dict[str, Any]:
        review = await request.json()
        uid = (review.get("request") or {}).get("uid", "")
        return {
            "apiVersion": review.get("apiVersion", "admission.k8s.io/v1"),
            "kind": "AdmissionReview",
            "response": {"uid": uid, "allowed": True},
        }

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9443)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    # The same call, with the same options, as `provenant serve` (app/cli.py).
    uvicorn.run(
        "echo_app:create_app",
        app_dir=str(HERE),
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        ssl_certfile=args.tls_cert,
        ssl_keyfile=args.tls_key,
        log_level=args.log_level,
        server_header=False,
    )


if __name__ == "__main__":
    main()
