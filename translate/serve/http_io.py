"""The HTTP edges of `translate serve`: typed errors with their JSON form, the body-size guard, the
API key, and reading an uploaded image (raw body or multipart) into model input.

Every error answer is JSON: `{"error": {"status": 413, "type": "body_too_large", "message": "..."}}`.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse
from torch import Tensor

from translate.data.images import ImageReadError, ImageTooLargeError, decode_image_bytes
from translate.deploy.folder_io import encode_bytes, image_pixels

__all__ = ["ACCEPTED_TYPES", "OUTPUT_TYPES", "BodyLimit", "ServeError", "Upload", "check_api_key", "decode_upload",
           "encode_output", "error_response", "read_upload"]

ACCEPTED_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/jpg": "JPEG", "image/webp": "WEBP"}
_PIL_FORMATS = ("PNG", "JPEG", "WEBP")
# Output format name -> (folder_io's format name, Content-Type).
OUTPUT_TYPES = {"png": ("png", "image/png"), "jpeg": ("jpg", "image/jpeg"), "jpg": ("jpg", "image/jpeg"),
                "webp": ("webp", "image/webp")}
_FORM_FIELDS = ("direction", "prompt", "format", "quality")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


class ServeError(Exception):
    """An answer other than 200: its HTTP status, a short type, a message naming the problem and
    the fix, and extra headers (Retry-After, WWW-Authenticate)."""

    def __init__(self, status: int, type_: str, message: str, headers: dict[str, str] | None = None) -> None:
        self.status, self.type, self.message, self.headers = status, type_, message, headers or {}
        super().__init__(message)


def error_response(error: ServeError) -> JSONResponse:
    return JSONResponse({"error": {"status": error.status, "type": error.type, "message": error.message}},
                        status_code=error.status, headers=error.headers)


def _too_large(size: str, limit: int) -> ServeError:
    return ServeError(413, "body_too_large", f"the body is {size} bytes, over the server's limit of {limit} bytes "
                      f"(--max-body-mb {limit / 1024 / 1024:g}); send a smaller image or raise --max-body-mb")


class BodyLimit:
    """ASGI middleware: 413 for a Content-Length over `limit` before anything is read, and for a
    body (chunked) that grows past it while it is read."""

    def __init__(self, app: Callable[..., Awaitable[None]], limit: int,
                 on_refused: Callable[[str], None] | None = None) -> None:
        self.app, self.limit, self.on_refused = app, limit, on_refused

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            if self.on_refused is not None:
                self.on_refused(scope.get("path", ""))
            response = error_response(_too_large(length.decode(), self.limit))
            response.headers["Connection"] = "close"  # the unread body must not be taken as the next request
            await response(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _too_large(f"more than {self.limit}", self.limit)
            return message

        await self.app(scope, limited, send)


def check_api_key(request: Request, api_key: str | None) -> None:
    """401 unless `api_key` is None or the request carries it (`Authorization: Bearer KEY` or
    `X-API-Key: KEY`); compared in constant time."""
    if api_key is None:
        return
    given = request.headers.get("x-api-key")
    if given is None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        given = token.strip() if scheme.lower() == "bearer" else None
    if given is None:
        raise ServeError(401, "unauthorized", "this server needs an API key: send 'Authorization: Bearer KEY' or "
                         "'X-API-Key: KEY'", {"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(given.encode(), api_key.encode()):
        raise ServeError(401, "unauthorized", "wrong API key", {"WWW-Authenticate": "Bearer"})


@dataclass
class Upload:
    """An uploaded image's bytes and the options that came with it in a multipart form."""

    data: bytes
    fields: dict[str, str]


async def read_upload(request: Request) -> Upload:
    """The image of a translate request: the raw body (Content-Type image/png, image/jpeg or
    image/webp) or the `image` part of a multipart/form-data body (its other parts: direction,
    prompt, format, quality)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    accepted = ", ".join(t for t in ACCEPTED_TYPES if t != "image/jpg") + " or multipart/form-data"
    if content_type in ACCEPTED_TYPES:
        return Upload(await request.body(), {})
    if content_type != "multipart/form-data":
        raise ServeError(415, "unsupported_media_type", f"Content-Type {content_type or '(none)'!r} is not "
                         f"accepted; send {accepted} (with the image in a part named 'image')")
    form = await request.form(max_files=1, max_fields=len(_FORM_FIELDS))
    image = form.get("image")
    if not isinstance(image, UploadFile):
        raise ServeError(400, "bad_request", "the multipart body has no file part named 'image'")
    part_type = (image.content_type or "").split(";")[0].strip().lower()
    if part_type and part_type not in ACCEPTED_TYPES and part_type != "application/octet-stream":
        raise ServeError(415, "unsupported_media_type", f"the 'image' part's Content-Type {part_type!r} is not "
                         f"accepted; send {accepted}")
    fields = {name: str(value) for name, value in form.items() if name in _FORM_FIELDS and isinstance(value, str)}
    return Upload(await image.read(), fields)


def decode_upload(data: bytes, channels: int, max_pixels: int) -> tuple[Tensor, np.ndarray | None]:
    """Bytes -> `(channels, H, W)` uint8 and the alpha to carry over, as `convert` decodes a file
    (EXIF orientation applied). Runs on a worker thread.

    Raises:
        ServeError: 400 for an empty, truncated or non-image body; 413 over `max_pixels`.
    """
    try:
        image = decode_image_bytes(data, max_pixels=max_pixels, formats=_PIL_FORMATS, name="the uploaded image")
    except ImageTooLargeError as error:
        raise ServeError(413, "image_too_large", f"the image has {error.pixels} pixels, over the server's limit of "
                         f"{error.limit} (--max-pixels); send a smaller image") from None
    except ImageReadError as error:
        raise ServeError(400, "bad_image", f"the body is not a readable PNG, JPEG or WebP image: {error.reason}"
                         ) from None
    return image_pixels(image, channels)


def encode_output(pixels: np.ndarray, alpha: np.ndarray | None, fmt: str, quality: int) -> bytes:
    """`(H, W, C)` uint8 -> the bytes `convert` writes for the same format and quality (png at zlib
    level 1). Runs on a worker thread."""
    return encode_bytes(pixels, alpha, OUTPUT_TYPES[fmt][0], quality, png_compression=1)
