"""Signed-URL signatures and header encodings, on their own."""

from __future__ import annotations

import dataclasses

import pytest

from mediaingest.exceptions import SignatureError
from mediaingest.storage import signing
from mediaingest.storage.encoding import (
    content_disposition,
    decode_metadata,
    decode_metadata_value,
    encode_metadata,
    encode_metadata_value,
)

SECRET = b"unit-test-secret"
NOW = 1_800_000_000
REQUEST = signing.SignedRequest(
    method="PUT",
    bucket="incoming",
    key="uploads/u/1-a.mp4",
    expires=NOW + 3600,
    size=1234,
    content_type="video/mp4",
    checksum_sha256="n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=",
    metadata={"asset-id": "a", "original-name": "x.mp4"},
    upload_id=None,
    part_number=None,
)


def test_a_valid_signature_verifies() -> None:
    signing.verify(SECRET, REQUEST, signing.sign(SECRET, REQUEST), now=NOW)
    assert signing.sign(SECRET, REQUEST) == signing.sign(SECRET, dataclasses.replace(REQUEST))


@pytest.mark.parametrize(
    "change",
    [
        {"method": "GET"},
        {"bucket": "processed"},
        {"key": "uploads/u/2-a.mp4"},
        {"expires": NOW + 7200},
        {"size": 1235},
        {"size": None},
        {"content_type": "video/quicktime"},
        {"content_type": None},
        {"checksum_sha256": None},
        {"metadata": {"asset-id": "b", "original-name": "x.mp4"}},
        {"metadata": {"asset-id": "a"}},
        {"metadata": {"asset-id": "a", "original-name": "x.mp4", "extra": "1"}},
        {"upload_id": "0" * 32},
        {"part_number": 1},
        {"content_disposition": "attachment"},
    ],
)
def test_every_field_is_covered(change: dict[str, object]) -> None:
    signature = signing.sign(SECRET, REQUEST)
    with pytest.raises(SignatureError) as caught:
        signing.verify(SECRET, dataclasses.replace(REQUEST, **change), signature, now=NOW)  # type: ignore[arg-type]
    assert caught.value.details["reason"] == "mismatch"


def test_fields_cannot_bleed_into_each_other() -> None:
    a = dataclasses.replace(REQUEST, bucket="ab", key="c")
    b = dataclasses.replace(REQUEST, bucket="a", key="bc")
    c = dataclasses.replace(REQUEST, bucket="a", key='b","c')
    assert len({signing.canonical_string(r) for r in (a, b, c)}) == 3


def test_other_secret_garbage_and_expiry() -> None:
    signature = signing.sign(SECRET, REQUEST)
    for bad in (signing.sign(b"other-secret", REQUEST), "", "zz", "é" * 64, signature.upper()):
        with pytest.raises(SignatureError):
            signing.verify(SECRET, REQUEST, bad, now=NOW)
    signing.verify(SECRET, REQUEST, signature, now=NOW + 3600)
    with pytest.raises(SignatureError) as caught:
        signing.verify(SECRET, REQUEST, signature, now=NOW + 3601)
    assert caught.value.details["reason"] == "expired"
    with pytest.raises(SignatureError):
        signing.verify(SECRET, dataclasses.replace(REQUEST, expires=None), signature, now=NOW)


@pytest.mark.parametrize(
    "value",
    ["clip.mp4", "Café déjà vu.mp4", "日本語.mov", "tab\tname", " leading", "=?UTF-8?B?Zm9v?=", "a" * 300, ""],
)
def test_metadata_values_round_trip_as_ascii(value: str) -> None:
    encoded = encode_metadata_value(value)
    assert encoded.isascii() and all(" " <= ch <= "~" for ch in encoded)
    assert decode_metadata_value(encoded) == value


def test_plain_values_are_left_alone_and_names_checked() -> None:
    assert encode_metadata_value("clip (1).mp4") == "clip (1).mp4"
    assert encode_metadata_value("été") == "=?UTF-8?B?w6l0w6k=?="
    assert decode_metadata_value("=?utf-8?b?w6l0w6k=?=") == "été"  # case-insensitive, as RFC 2047 says
    assert decode_metadata_value("=?UTF-8?B?not base64?=") == "=?UTF-8?B?not base64?="
    assert encode_metadata({"Asset-ID": "1"}) == {"asset-id": "1"}
    assert decode_metadata({"Original-Name": "=?UTF-8?B?w6l0w6k=?="}) == {"original-name": "été"}
    for name in ("", "bad name", "naïve", "x_y", "-x"):
        with pytest.raises(ValueError):
            encode_metadata({name: "v"})


def test_content_disposition() -> None:
    assert content_disposition("clip.mp4") == "attachment; filename=\"clip.mp4\"; filename*=UTF-8''clip.mp4"
    assert content_disposition('a"b\\c é.mp4') == (
        "attachment; filename=\"a_b_c _.mp4\"; filename*=UTF-8''a%22b%5Cc%20%C3%A9.mp4"
    )
