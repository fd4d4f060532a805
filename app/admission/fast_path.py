"""POST /k8s/validate, served straight from ASGI, ahead of FastAPI's router.

kube-apiserver calls the webhook for every Pod and workload it admits, and waits for it. For
this one endpoint, FastAPI's route matching over every route of the API, its dependency
resolution and its response handling cost as much CPU as deciding a cached admission. This
middleware answers it with the same code as the documented route
(``app.admission.router.answer_review``, ``app.admission.auth.webhook_caller``) and the same
error shape (``app.errors``); every other request goes on to FastAPI.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app import jsoncodec
from app.admission.auth import webhook_caller
from app.admission.router import answer_review
from app.errors import ApiError, error_body

log = logging.getLogger("provenant.admission")

PATH = "/k8s/validate"
_JSON = [(b"content-type", b"application/json")]
_CHALLENGE = [(b"www-authenticate", b"Bearer")]
_INTERNAL = "internal error; see the server log"


class AdmissionFastPath:
    def __init__(self, app: ASGIApp, route: object = None) -> None:
        self.app = app
        self.route = route  # the documented route, for metrics labels

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if self.route is not None:
            scope["route"] = self.route
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
        except Exception:
            log.exception("unhandled error on POST %s", PATH)
            status = 500
            body = jsoncodec.dumps(error_body("internal_error", _INTERNAL))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
