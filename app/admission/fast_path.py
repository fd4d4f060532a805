"""POST /k8s/validate, served straight from ASGI, ahead of FastAPI's middleware and router.

kube-apiserver calls the webhook for every Pod and workload it admits, and waits for it. For
this one endpoint, FastAPI's middleware stack, its route matching over every route of the API,
its dependency resolution and its response handling cost as much CPU as deciding a cached
admission. ``app.main.ProvenantAPI`` hands this endpoint's requests to the handler here, which
answers with the same code as the documented route (``app.admission.router.answer_review``,
``app.admission.auth.webhook_caller``), the same error shape (``app.errors``) and the same
request metrics; every other request goes on to FastAPI.
"""

from __future__ import annotations

import logging
import time

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive, Scope, Send

from app import jsoncodec
from app.admission.auth import webhook_caller
from app.admission.router import answer_review
from app.db import DATABASE_UNAVAILABLE
from app.errors import ApiError, database_unavailable, error_body
from app.metrics import Metrics

log = logging.getLogger("provenant.admission")

PATH = "/k8s/validate"
_JSON = [(b"content-type", b"application/json")]
_CHALLENGE = [(b"www-authenticate", b"Bearer")]
_INTERNAL = "internal error; see the server log"


def handles(scope: Scope) -> bool:
    """Whether the fast path answers this request (any other method on the path gets FastAPI's
    answer, a 405)."""
    return scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "POST"


class AdmissionFastPath:
    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request; ``scope["app"]`` must be the application (for its state)."""
        start = time.perf_counter()
        request = Request(scope, receive)
        headers = _JSON
        try:
            body = await answer_review(request, await webhook_caller(request))
            status = 200
        except ApiError as exc:
            status = exc.status
            body = jsoncodec.dumps(error_body(exc.code, exc.message, exc.details))
            if exc.status == 401:
                headers = _JSON + _CHALLENGE
        except DATABASE_UNAVAILABLE as exc:
            # Only before deciding (the caller's token): a decision the database fails is
            # refused as not recorded, with a 200 (app.admission.service).
            status = 503
            body, extra = database_unavailable(exc)
            headers = _JSON + extra
        except ClientDisconnect:  # hung up, or cut off as too slow (app/slow_clients.py)
            status = 408
            body = jsoncodec.dumps(error_body("request_timeout", "the body never arrived"))
        except Exception:
            log.exception("unhandled error on POST %s", PATH)
            status = 500
            body = jsoncodec.dumps(error_body("internal_error", _INTERNAL))
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [*headers, (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})
        finally:
            if self.metrics is not None:
                self.metrics.observe(PATH, "POST", status, time.perf_counter() - start)
