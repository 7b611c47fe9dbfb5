"""The API's JSON envelope and camelCase base model, shared by every domain's schemas."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

T = TypeVar("T")


class ApiModel(BaseModel):
    """camelCase on the wire (the seed's API), snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class RequestModel(ApiModel):
    """A request body: strict, so `true` is not a file size and `"5"` is not a part number, and camelCase
    only, so `file_name` is not silently taken beside `fileName` (one style on the wire). Python code builds
    one from field names with `model_validate({...}, by_name=True)`."""

    model_config = ConfigDict(strict=True, validate_by_name=False)


class Envelope(BaseModel, Generic[T]):
    success: bool = True
    data: T


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any] | None = None


class ErrorEnvelope(BaseModel):
    success: bool = False
    error: ErrorBody


# OpenAPI `responses` shared by routers, so each documented error is written once.
UNAUTHENTICATED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorEnvelope, "description": "Missing, invalid or expired credentials"}
}
