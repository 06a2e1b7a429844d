"""tftt.pixels.imports: JPEG/PNG/GIF -> Secondary Capture, pixels only, no image metadata."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, PngImagePlugin
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite

from tftt.errors import UnsupportedInputError
from tftt.pixels.imports import (
    MULTIFRAME_TRUE_COLOR_SC,
    SECONDARY_CAPTURE,
    ImportUIDs,
    image_to_secondary_capture,
)

CANARY = "CANARY-IMG-5521"
UIDS = ImportUIDs(series_instance_uid="2.25.1001", sop_instance_uid="2.25.1002")


def _case() -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "TEACHING^CASE^7"
    ds.PatientID = "TF-0007"
    ds.PatientSex = "F"
    ds.PatientAge = "042Y"
    ds.StudyInstanceUID = "2.25.77"
    ds.StudyDate = "20240102"
    ds.AccessionNumber = "A7"
    ds.StudyDescription = "Teaching case"
    ds.SeriesInstanceUID = "2.25.78"  # series level: must not be copied
    ds.InstitutionName = CANARY  # equipment level: must not be copied
    ds.add_new(0x00091010, "LO", CANARY)  # private: must not be copied
    return ds


def _written(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def _convert(data: bytes, **kwargs: object) -> tuple[Dataset, bytes]:
    ds = image_to_secondary_capture(
        data, patient_study=_case(), uids=UIDS, instance_number=3, **kwargs
    )
    raw = _written(ds)
    assert CANARY.encode() not in raw
    return dcmread(io.BytesIO(raw)), raw


def _rgb(rows: int = 48, columns: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (rows, columns, 3), dtype=np.uint8)


def _png(image: Image.Image) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", CANARY)
    info.add_text("Author", CANARY, zip=True)
    info.add_itxt("Description", CANARY)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", pnginfo=info)
    data = buffer.getvalue()
    assert CANARY.encode() in data  # the canary is really in the input
    return data


def test_png_with_text_chunks_becomes_lossless_rgb_sc_without_them() -> None:
    pixels = _rgb()
    out, _ = _convert(_png(Image.fromarray(pixels)))
    assert out.SOPClassUID == SECONDARY_CAPTURE
    assert out.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert out.PhotometricInterpretation == "RGB" and out.SamplesPerPixel == 3
    assert out.BitsAllocated == 8 and out.PlanarConfiguration == 0
    assert np.array_equal(out.pixel_array, pixels)
    assert out.ConversionType == "WSD"
    assert out.LossyImageCompression == "00"
    assert out.SOPInstanceUID == UIDS.sop_instance_uid
    assert out.file_meta.MediaStorageSOPInstanceUID == UIDS.sop_instance_uid
    assert out.SeriesInstanceUID == UIDS.series_instance_uid
    assert out.InstanceNumber == 3


def test_patient_and_study_modules_come_from_the_case_and_nothing_else() -> None:
    out, _ = _convert(_png(Image.fromarray(_rgb())))
    case = _case()
    for keyword in (
        "PatientName",
        "PatientID",
        "PatientSex",
        "PatientAge",
        "StudyInstanceUID",
        "StudyDate",
        "AccessionNumber",
        "StudyDescription",
        "SpecificCharacterSet",
    ):
        assert out[keyword].value == case[keyword].value, keyword
    assert out.PatientBirthDate == ""  # type 2: present, empty
    assert "InstitutionName" not in out
    assert 0x00091010 not in out


def test_grayscale_png_8_and_16_bit_are_lossless_monochrome2() -> None:
    rng = np.random.default_rng(1)
    gray8 = rng.integers(0, 256, (30, 20), dtype=np.uint8)
    out, _ = _convert(_png(Image.fromarray(gray8)))
    assert out.PhotometricInterpretation == "MONOCHROME2" and out.BitsStored == 8
    assert np.array_equal(out.pixel_array, gray8)
    gray16 = rng.integers(0, 65536, (30, 20), dtype=np.uint16)
    out, _ = _convert(_png(Image.fromarray(gray16)))
    assert out.PhotometricInterpretation == "MONOCHROME2" and out.BitsStored == 16
    assert np.array_equal(out.pixel_array, gray16)


def test_transparency_is_flattened_onto_black() -> None:
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)
    rgba[..., :3] = 200  # colour hidden under transparent pixels
    rgba[:5, :, 3] = 255  # top half opaque
    out, _ = _convert(_png(Image.fromarray(rgba, "RGBA")))
    assert (out.pixel_array[:5] == 200).all()
    assert (out.pixel_array[5:] == 0).all()


def test_jpeg_exif_and_comment_are_dropped_pixels_kept() -> None:
    exif = Image.Exif()
    exif[0x010E] = CANARY  # ImageDescription
    exif[0x013B] = CANARY  # Artist
    exif[0x8298] = CANARY  # Copyright
    buffer = io.BytesIO()
    Image.fromarray(_rgb(64, 48)).save(
        buffer, "JPEG", quality=90, exif=exif.tobytes(), comment=CANARY.encode()
    )
    data = buffer.getvalue()
    assert data.count(CANARY.encode()) >= 2
    out, _ = _convert(data)
    with Image.open(io.BytesIO(data)) as decoded:
        expected = np.asarray(decoded.convert("RGB"))
    assert np.array_equal(out.pixel_array, expected)
    assert out.LossyImageCompression == "01"
    assert out.LossyImageCompressionMethod == "ISO_10918_1"


def test_animated_gif_becomes_multiframe_true_color_sc_with_every_frame() -> None:
    frames = [Image.fromarray(_rgb(24, 32, seed)).quantize(64) for seed in range(3)]
    buffer = io.BytesIO()
    frames[0].save(
        buffer,
        "GIF",
        save_all=True,
        append_images=frames[1:],
        comment=CANARY.encode(),
        duration=40,
        loop=0,
    )
    data = buffer.getvalue()
    assert CANARY.encode() in data
    out, _ = _convert(data)
    assert out.SOPClassUID == MULTIFRAME_TRUE_COLOR_SC
    assert out.NumberOfFrames == 3
    assert out.FrameIncrementPointer == 0x00181063
    assert float(out.FrameTime) == 100.0  # fixed: the GIF's own delays are not read
    with Image.open(io.BytesIO(data)) as gif:
        for index in range(3):
            gif.seek(index)
            assert np.array_equal(out.pixel_array[index], np.asarray(gif.convert("RGB")))


def test_single_frame_gif_is_a_plain_rgb_sc() -> None:
    buffer = io.BytesIO()
    Image.fromarray(_rgb(16, 16)).quantize(32).save(buffer, "GIF", comment=CANARY.encode())
    out, _ = _convert(buffer.getvalue())
    assert out.SOPClassUID == SECONDARY_CAPTURE and "NumberOfFrames" not in out
    assert out.PhotometricInterpretation == "RGB"


def test_same_input_gives_same_bytes_and_the_case_is_not_changed() -> None:
    data = _png(Image.fromarray(_rgb()))
    case = _case()
    before = case.to_json_dict()
    first = _written(
        image_to_secondary_capture(data, patient_study=case, uids=UIDS, instance_number=1)
    )
    second = _written(
        image_to_secondary_capture(data, patient_study=case, uids=UIDS, instance_number=1)
    )
    assert first == second
    assert case.to_json_dict() == before


@pytest.mark.parametrize(
    "data",
    [
        b"not an image at all",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,  # truncated PNG
    ],
)
def test_undecodable_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(UnsupportedInputError):
        image_to_secondary_capture(data, patient_study=_case(), uids=UIDS, instance_number=1)


@pytest.mark.parametrize("kind", ["BMP", "TIFF"])
def test_other_formats_are_refused(kind: str) -> None:
    buffer = io.BytesIO()
    Image.fromarray(_rgb(8, 8)).save(buffer, kind)
    with pytest.raises(UnsupportedInputError):
        image_to_secondary_capture(
            buffer.getvalue(), patient_study=_case(), uids=UIDS, instance_number=1
        )


def test_case_without_study_uid_is_refused() -> None:
    case = _case()
    del case.StudyInstanceUID
    with pytest.raises(UnsupportedInputError):
        image_to_secondary_capture(
            _png(Image.fromarray(_rgb())), patient_study=case, uids=UIDS, instance_number=1
        )


def test_uids_are_validated() -> None:
    with pytest.raises(ValueError):
        ImportUIDs(series_instance_uid="2.25.01", sop_instance_uid="2.25.1")
    with pytest.raises(ValueError):
        ImportUIDs(series_instance_uid="2.25." + "1" * 70, sop_instance_uid="2.25.1")
