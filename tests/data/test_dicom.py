"""DICOM reading: rescale, VOI LUT/window, MONOCHROME1, header whitelist, and the bad DICOM inputs."""

from __future__ import annotations

import numpy as np
import pytest

from seegaan import SeegaanError
from seegaan.data import dicom_header, load_dataset, read_image

pytest.importorskip("pydicom")


def make_dicom(
    path,
    arr,
    *,
    photometric="MONOCHROME2",
    slope=None,
    intercept=None,
    window=None,
    voi_lut=None,
    pixels=True,
    transfer_syntax=None,
    view="PA",
    bits=12,
):
    """Write ``arr`` (2-D, or frames x H x W) as a DX DICOM file with identifying fields filled in."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "SECRET-MRN-123"
    ds.PatientBirthDate = "19500101"
    ds.InstitutionName = "Hospital of Secrets"
    ds.Modality = "DX"
    ds.Manufacturer = "Acme Imaging"
    if view is not None:
        ds.ViewPosition = view
    if pixels:
        ds.set_pixel_data(np.asarray(arr, dtype=np.uint16), photometric, bits)
    else:
        ds.Rows, ds.Columns = np.asarray(arr).shape[-2:]
        ds.PhotometricInterpretation = photometric
    if slope is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept or 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if voi_lut is not None:
        item = Dataset()
        item.LUTDescriptor = [len(voi_lut), 0, 8]
        item.add_new(0x00283006, "US", [int(v) for v in voi_lut])
        ds.VOILUTSequence = [item]
    if transfer_syntax is not None:
        ds.file_meta.TransferSyntaxUID = transfer_syntax
        ds.PixelData = encapsulate([b"\xff\xd8not-really-compressed-data\xff\xd9"])
        ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def ramp():
    return (np.arange(32 * 32).reshape(32, 32) % 256).astype(np.uint16)


def test_plain_dicom_is_minmax_scaled(tmp_path, ramp):
    path = make_dicom(tmp_path / "a.dcm", ramp)
    img = read_image(path, size=None)
    assert img.dtype == np.float32 and img.shape == (32, 32)
    np.testing.assert_allclose(img, ramp / 255.0 * 2 - 1, atol=1e-6)


def test_monochrome1_is_inverted(tmp_path, ramp):
    m2 = read_image(make_dicom(tmp_path / "m2.dcm", ramp), size=None)
    m1 = read_image(make_dicom(tmp_path / "m1.dcm", ramp, photometric="MONOCHROME1"), size=None)
    np.testing.assert_allclose(m1, -m2, atol=1e-6)


def test_rescale_then_window_from_header(tmp_path, ramp):
    # stored 0..255 -> HU-like 2*v - 100 in [-100, 410]; header window 0 +- 100 clips it
    path = make_dicom(tmp_path / "w.dcm", ramp, slope=2, intercept=-100, window=(0, 200))
    img = read_image(path, size=None)
    value = 2.0 * ramp - 100
    expected = np.clip(value, -100, 100)
    expected = (expected - expected.min()) / (expected.max() - expected.min()) * 2 - 1
    # pydicom's linear window is the DICOM formula (center - 0.5, width - 1): compare loosely
    np.testing.assert_allclose(img, expected, atol=0.02)
    assert (img == 1.0).mean() > 0.5  # everything above +100 saturates


def test_window_given_by_caller_overrides_the_header(tmp_path, ramp):
    path = make_dicom(tmp_path / "w.dcm", ramp, slope=2, intercept=-100, window=(0, 200))
    img = read_image(path, size=None, window=(155, 510))  # the full rescaled range [-100, 410]
    np.testing.assert_allclose(img, (2.0 * ramp - 100 + 100) / 510 * 2 - 1, atol=1e-5)


def test_voi_lut_sequence_is_applied(tmp_path, ramp):
    lut = np.r_[np.zeros(128), np.full(128, 255)]
    img = read_image(make_dicom(tmp_path / "lut.dcm", ramp, voi_lut=lut), size=None)
    np.testing.assert_array_equal(img, np.where(ramp < 128, -1.0, 1.0))


def test_header_whitelist_only(tmp_path, ramp):
    header = dicom_header(make_dicom(tmp_path / "h.dcm", ramp))
    assert header["ViewPosition"] == "PA" and header["Manufacturer"] == "Acme Imaging"
    text = repr(header)
    for secret in ("Doe", "SECRET", "19500101", "Hospital"):
        assert secret not in text


def test_identifying_fields_never_reach_the_dataset(tmp_path, ramp):
    make_dicom(tmp_path / "x1.dcm", ramp, view="PA")
    make_dicom(tmp_path / "x2.dcm", ramp, view="LL")
    lateral = load_dataset(tmp_path, size=16, view="lat")
    assert list(lateral.table["image_id"]) == ["x2"]
    data = load_dataset(tmp_path, size=16, view=["PA"])
    assert list(data.table["image_id"]) == ["x1"] and data.table["view"].tolist() == ["PA"]
    assert data.table["patient_id"].tolist() == ["x1"]  # never the DICOM PatientID
    dump = data.table.to_csv() + repr(data.headers) + data.report()
    for secret in ("Doe", "SECRET", "19500101", "Hospital"):
        assert secret not in dump
    assert data.array().shape == (1, 1, 16, 16)


def test_multiframe_is_an_error(tmp_path, ramp):
    path = make_dicom(tmp_path / "mf.dcm", np.stack([ramp, ramp]))
    with pytest.raises(SeegaanError, match=r"mf\.dcm.*multi-frame"):
        read_image(path)


def test_no_pixel_data_is_an_error(tmp_path, ramp):
    path = make_dicom(tmp_path / "np.dcm", ramp, pixels=False)
    with pytest.raises(SeegaanError, match=r"np\.dcm.*no pixel data"):
        read_image(path)


def test_compressed_without_plugin_names_the_plugin(tmp_path, ramp):
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGLSLossless

    if get_decoder(JPEGLSLossless).is_available:
        pytest.skip("a JPEG-LS decoder is installed here")
    path = make_dicom(tmp_path / "ls.dcm", ramp, transfer_syntax=JPEGLSLossless)
    with pytest.raises(SeegaanError, match=r"ls\.dcm.*JPEG-LS.*(pylibjpeg|gdcm|pyjpegls)") as info:
        read_image(path)
    assert "\n" not in str(info.value)


def test_truncated_dicom_is_an_error(tmp_path, ramp):
    path = make_dicom(tmp_path / "t.dcm", ramp)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    with pytest.raises(SeegaanError, match=r"t\.dcm"):
        read_image(path)


def test_bad_dicoms_in_a_folder_are_skipped_and_listed(tmp_path, ramp):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        make_dicom(folder / f"ok{i}.dcm", ramp + i)
    make_dicom(folder / "mf.dcm", np.stack([ramp, ramp]))
    make_dicom(folder / "nopix.dcm", ramp, pixels=False)
    data = load_dataset(folder, size=16)
    assert sorted(data.table["image_id"]) == ["ok0", "ok1", "ok2"]
    assert len(data.skipped) == 2
    assert "files skipped at loading (unreadable, bad header): 2" in data.report()
    out = data.write_skipped(tmp_path / "skipped.csv")
    assert out.read_text().count("\n") == 3


def test_compressed_with_an_available_decoder_is_read(tmp_path, ramp):
    from pydicom import dcmread
    from pydicom.uid import RLELossless

    path = make_dicom(tmp_path / "plain.dcm", ramp)
    ds = dcmread(path)
    try:
        ds.compress(RLELossless)  # pydicom's own RLE encoder: no plugin needed
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"RLE encoder unavailable here: {exc}")
    ds.save_as(tmp_path / "rle.dcm")
    assert dcmread(tmp_path / "rle.dcm").file_meta.TransferSyntaxUID == RLELossless
    np.testing.assert_array_equal(read_image(tmp_path / "rle.dcm", size=None), read_image(path, size=None))


def test_extensionless_dicom_with_dots_in_the_name(tmp_path, ramp):
    folder = tmp_path / "series"
    folder.mkdir()
    make_dicom(folder / "1.2.840.99.1", ramp)
    make_dicom(folder / "1.2.840.99.2", ramp + 1)
    (folder / "notes.txt").write_text("not an image")
    data = load_dataset(folder, size=16)
    assert sorted(data.table["image_id"]) == ["1.2.840.99.1", "1.2.840.99.2"]
    assert data.counts["formats"] == "dicom 2" and data.counts["ignored_files"] == 1


def test_free_text_view_position_is_dropped_and_counted(tmp_path, ramp):
    # issue #12: ViewPosition keeps its DICOM defined terms only; free text never reaches the table
    folder = tmp_path / "dcm"
    folder.mkdir()
    make_dicom(folder / "a.dcm", ramp, view="PA")
    make_dicom(folder / "b.dcm", ramp, view="DOE JANE PORT")
    make_dicom(folder / "c.dcm", ramp, view="LL")
    assert "ViewPosition" not in dicom_header(folder / "b.dcm")
    data = load_dataset(folder, size=8)
    views = data.table.set_index("image_id")["view"]
    assert views["a"] == "PA" and views["c"] == "LL" and views.isna()["b"]
    assert "DOE" not in data.table.to_csv() + repr(data.headers)
    assert "outside their defined terms, left blank: ViewPosition 1" in data.report()
