"""The engagement image model's endpoints: predict (advisor), retrain (admin, a background job).

The image is the raw request body (``Content-Type: image/jpeg`` or ``image/png``) or a
multipart form field ``file``; it is decoded in memory, scored and discarded: no image is
stored or logged. Limits: ``RETAIN_VISION_MAX_UPLOAD_BYTES`` (checked while reading, so a 50 MB
upload is refused without being held) and ``RETAIN_VISION_MAX_PIXELS`` (checked from the header
before decoding). (No ``from __future__ import annotations``: FastAPI must see the local
dependencies as objects.)
"""

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from retain.serving.jobs import JobRunner, accepted, already_running
from retain.serving.security import Principal
from retain.settings import Settings
from retain.store.records import JobRecord
from retain.store.repository import Store
from retain.vision.images import ImageError
from retain.vision.service import EngagementService

Dependency = Callable[..., Coroutine[Any, Any, Principal]]
_IMAGE_TYPES = {"image/jpeg", "image/jpg", "image/png", "application/octet-stream"}
RETRAIN_KIND = "vision-retrain"


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the upload is {int(declared):,} bytes; the limit is {limit:,}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the upload is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _image_bytes(request: Request, limit: int) -> bytes:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type.startswith("multipart/form-data"):
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
            raise HTTPException(413, f"the upload is {int(declared):,} bytes; the limit is {limit:,}")
        form = await request.form(max_files=1, max_fields=4)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise HTTPException(
                422, [{"field": "file", "problem": "send the image as the form field 'file'"}]
            )
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise HTTPException(413, f"the upload is over the limit of {limit:,} bytes")
        return data
    if content_type not in _IMAGE_TYPES:
        raise HTTPException(
            415,
            f"send a JPEG or PNG as the body (Content-Type image/jpeg or image/png), not {content_type or 'nothing'}",
        )
    return await _read_limited(request, limit)


def add_vision_routes(
    app: FastAPI,
    *,
    settings: Settings,
    store: Store,
    jobs: JobRunner,
    service: EngagementService,
    advisor: Dependency,
    admin: Dependency,
    on_prediction: Callable[[str, int], None] | None = None,
) -> None:
    """Add ``POST /v1/vision/engagement/predict`` and ``POST /v1/vision/engagement/retrain``."""

    @app.post(
        "/v1/vision/engagement/predict",
        tags=["vision"],
        summary="P(not engaged) for one webcam frame (JPEG or PNG body, or multipart field 'file').",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                    "image/png": {"schema": {"type": "string", "format": "binary"}},
                },
            }
        },
    )
    async def predict_engagement(
        request: Request, who: Annotated[Principal, Depends(advisor)]
    ) -> dict[str, Any]:
        data = await _image_bytes(request, settings.vision_max_upload_bytes)
        try:
            result = service.predict_bytes(data)
        except ImageError as exc:
            raise HTTPException(422, [{"field": "body", "problem": str(exc)}]) from None
        except LookupError as exc:
            raise HTTPException(503, str(exc)) from None
        except ImportError:
            raise HTTPException(
                503, "this server was installed without the vision extra: pip install 'retain[vision]'"
            ) from None
        if on_prediction is not None:
            on_prediction(result.label, result.version)
        return result.to_dict()

    @app.post(
        "/v1/vision/engagement/retrain",
        tags=["vision"],
        status_code=202,
        summary="Retrain the engagement model as a background job (admin); follow it at /v1/jobs/{id}.",
    )
    def retrain_engagement(who: Annotated[Principal, Depends(admin)]) -> JSONResponse:
        running = jobs.active(RETRAIN_KIND, "vision.engagement")
        if running is not None:
            return already_running("an engagement retrain", running)
        folder = settings.resolved_vision_data_dir()
        if not folder.is_dir():
            raise HTTPException(
                409, f"no engagement images to train on: set RETAIN_VISION_DATA_DIR ({folder} is missing)"
            )

        def work(job: JobRecord) -> dict[str, Any]:
            from retain.vision.lifecycle import train_and_register

            result = train_and_register(settings)
            if result["promoted"]:
                service.invalidate()
            return result

        job = jobs.submit(
            RETRAIN_KIND,
            "vision.engagement",
            work,
            params={"model": "vision.engagement"},
            actor=who.scope.actor,
        )
        store.audit(
            "model.retrain.start", scope=who.scope, details={"model": "vision.engagement", "job": job.id}
        )
        return accepted(job)
