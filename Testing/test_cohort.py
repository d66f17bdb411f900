"""The cohort manifest, fixed scaling, `cohort check` (each problem named) and `cohort import`."""

from __future__ import annotations


import numpy as np
import pytest
import SimpleITK as sitk

from helpers import file_digest, write_tiny_cohort
from RobustDeepLogic.cohort.scaling import DEFAULT_SCALING, Scaling
from RobustDeepLogic.cohort.manifest import Cohort
from RobustDeepLogic.cohort.patient import Patient
from RobustDeepLogic.cohort.check import check_cohort
from RobustDeepLogic.cohort.importer import discover, import_cohort
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.io.volumes import read_volume, write_volume


def test_manifest_round_trip(tmp_path):
    cohort = write_tiny_cohort(tmp_path / "c", n=2)
    cohort.patients[0].split, cohort.patients[0].fold = "train", 3
    cohort.add(Patient(id="S0001", modalities={"FD": "S0001/FD.nii.gz"},
                       provenance={"kind": "synthetic", "parents": ["P001", "P002"], "mask": "mask2",
                                   "levels": 4, "seed": 7, "version": "0.1.0"}))
    cohort.scaling["T1"] = Scaling(512.0, 0.0, "a.u.")
    cohort.save()
    back = Cohort.load(tmp_path / "c")
    assert back.to_json() == cohort.to_json()
    assert back.patient("S0001").parents == ["P001", "P002"]
    assert back.patient("P001").parents == ["P001"]
    assert back.select(synthetic=True)[0].id == "S0001"


def test_scaling_is_fixed_affine_and_exactly_invertible(rng):
    suv = rng.uniform(0, 20, 1000)
    s = DEFAULT_SCALING["FD"]
    np.testing.assert_allclose(s.to_physical(s.to_scaled(suv)), suv, rtol=1e-14)
    hu = rng.uniform(-1000, 2000, 1000)
    c = DEFAULT_SCALING["CT"]
    assert c.to_scaled(-1000.0) == 0.0 and c.to_scaled(2000.0) == 1.0
    np.testing.assert_allclose(c.to_physical(c.to_scaled(hu)), hu, rtol=1e-14, atol=1e-12)
    # the same constant for every image: a brighter image stays brighter (no per-image min-max)
    assert s.to_scaled(2 * suv).max() == pytest.approx(2 * s.to_scaled(suv).max())


@pytest.mark.parametrize("content,message", [
    ("{not json", "cannot read the manifest"),
    ('{"format": "other"}', "not a RobustDeep cohort"),
    ('{"format": "robustdeep-cohort", "version": 99}', "newer than"),
    ('{"format": "robustdeep-cohort", "space": "mars"}', "space must be"),
    ('{"format": "robustdeep-cohort", "patients": [{"id": "A", "modalities": {"PETX": "a"}}]}',
     "unknown modality"),
])
def test_bad_manifests_are_named(tmp_path, content, message):
    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(InputError, match=message) as err:
        Cohort.load(tmp_path)
    assert "manifest.json" in str(err.value)


def test_folder_without_manifest(tmp_path):
    with pytest.raises(InputError, match="no manifest.json"):
        Cohort.load(tmp_path)


def test_a_valid_cohort_has_no_problems(tmp_path):
    cohort = write_tiny_cohort(tmp_path / "c")
    assert check_cohort(cohort) == []


def _replace(cohort, pid, modality, array=None, image=None):
    path = cohort.path(pid, modality)
    if image is None:
        ref = read_volume(path)
        image = sitk.GetImageFromArray(array.astype(np.float32))
        image.CopyInformation(ref)
    write_volume(image, path)
    return path


def test_check_reports_every_problem_with_patient_and_file(tmp_path):
    cohort = write_tiny_cohort(tmp_path / "c", n=6, modalities=("FD", "LD", "CT"))
    shape = (6, 8, 7)
    # P001: missing file; P002: NaN; P003: negative SUV; P004: CT out of HU range;
    # P005: LD on another grid; P006: duplicate of P001's FD content, and unreadable CT.
    cohort.path("P001", "LD").unlink()
    nan = np.ones(shape)
    nan[0, 0, 0] = np.nan
    _replace(cohort, "P002", "FD", nan)
    _replace(cohort, "P003", "LD", np.full(shape, -2.0))
    _replace(cohort, "P004", "CT", np.full(shape, -3024.0))
    moved = read_volume(cohort.path("P005", "LD"))
    moved.SetOrigin((5.0, 5.0, 5.0))
    _replace(cohort, "P005", "LD", image=moved)
    _replace(cohort, "P006", "FD", image=read_volume(cohort.path("P001", "FD")))
    cohort.path("P006", "CT").write_bytes(b"garbage")
    before = file_digest(tmp_path / "c")
    problems = check_cohort(cohort, tasks=["ld2fd", "mr2ct"])
    assert file_digest(tmp_path / "c") == before  # checking modifies nothing
    found = {(p.patient, p.modality, p.message.split(" ")[0]) for p in problems}

    def has(pid, modality, text):
        return any(p.patient == pid and p.modality == modality and text in p.message for p in problems)

    assert has("P001", "LD", "file not found")
    assert has("P002", "FD", "NaN or Inf")
    assert has("P003", "LD", "negative SUV")
    assert has("P004", "CT", "outside the plausible")
    assert has("P005", "LD", "must share one grid")
    assert has("P006", "FD", "identical to patient P001")
    assert has("P006", "CT", "cannot read")
    # mr2ct needs T1 and T2 which no patient has: one error per patient, naming the task
    assert sum("task mr2ct needs T1, T2" in p.message for p in problems) == 6
    assert all(p.file for p in problems)
    assert len(found) >= 7


def test_check_flags_unrescaled_ct_and_duplicate_ids(tmp_path):
    cohort = write_tiny_cohort(tmp_path / "c", n=2, modalities=("CT",))
    _replace(cohort, "P001", "CT", np.linspace(0, 3000, 6 * 8 * 7).reshape(6, 8, 7))
    cohort.patients.append(Patient(id="P002", modalities=dict(cohort.patients[1].modalities)))
    problems = check_cohort(cohort)
    assert any("look like stored values" in p.message and p.patient == "P001" for p in problems)
    assert any("listed 2 times" in p.message and p.patient == "P002" for p in problems)


def test_2d_image_in_a_cohort(tmp_path):
    cohort = write_tiny_cohort(tmp_path / "c", n=1, modalities=("FD",), tasks=())
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 4), np.float32)), str(cohort.path("P001", "FD")))
    problems = check_cohort(cohort)
    assert len(problems) == 1 and "3D" in problems[0].message


def _write(path, value=1.0, shape=(4, 5, 6)):
    image = sitk.GetImageFromArray(np.full(shape, value, np.float32))
    image.SetSpacing((1.0, 1.5, 2.0))
    return write_volume(image, path)


def test_import_by_naming_rule_converts_and_never_touches_sources(tmp_path):
    src = tmp_path / "src"
    _write(src / "sub01" / "fd.nii.gz", 3.0)
    _write(src / "sub01" / "LowDose.nrrd", 0.5)
    _write(src / "sub01" / "T1w.mha", 400.0)
    _write(src / "sub02_FD.nii", 4.0)
    _write(src / "sub02_ct.nii.gz", 40.0)
    (src / "notes.txt").write_text("hello")
    before = file_digest(src)
    cohort, skipped = import_cohort(src, tmp_path / "out", tasks=["ld2fd"])
    assert file_digest(src) == before
    assert cohort.ids == ["sub01", "sub02"]
    assert set(cohort.patient("sub01").modalities) == {"FD", "LD", "T1"}
    assert set(cohort.patient("sub02").modalities) == {"FD", "CT"}
    assert any("notes.txt" in s for s in skipped)
    fd = read_volume(cohort.path("sub01", "FD"))
    assert fd.GetSpacing() == (1.0, 1.5, 2.0)
    assert cohort.scaling["T1"].scale == pytest.approx(400.0)
    back = Cohort.load(tmp_path / "out")
    assert back.tasks == ["ld2fd"]
    # importing again resumes: nothing rewritten
    stamp = cohort.path("sub01", "FD").stat().st_mtime_ns
    import_cohort(src, tmp_path / "out")
    assert cohort.path("sub01", "FD").stat().st_mtime_ns == stamp


def test_import_dicom_pet_becomes_suv(tmp_path):
    import datetime as dt

    from RobustDeepLogic.io.dicom import write_pet_series

    suv = sitk.GetImageFromArray(np.full((3, 6, 5), 2.5, np.float32))
    write_pet_series(suv, tmp_path / "src" / "pat1" / "FD", weight_kg=70, injected_dose_bq=2e8,
                     injection_datetime=dt.datetime(2020, 1, 1, 10), series_datetime=dt.datetime(2020, 1, 1, 11))
    cohort, _ = import_cohort(tmp_path / "src", tmp_path / "out")
    arr = sitk.GetArrayFromImage(cohort.read("pat1", "FD"))
    np.testing.assert_allclose(arr, 2.5, rtol=1e-4)
    assert cohort.patient("pat1").meta["source"]["FD"]["suv"]["weight_kg"] == 70


def test_import_refuses_two_images_of_one_modality(tmp_path):
    src = tmp_path / "src"
    _write(src / "p1" / "FD.nii.gz")
    _write(src / "p1" / "fulldose.nrrd")
    with pytest.raises(InputError, match="two FD images"):
        discover(src)


def test_import_of_empty_folder(tmp_path):
    (tmp_path / "src").mkdir()
    with pytest.raises(InputError, match="no patient images"):
        import_cohort(tmp_path / "src", tmp_path / "out")


# --------------------------------------------------------------------------------------------------
# Files that ITK reads without complaint (issue 15 #12, #15, #17): import refuses, check reports
# --------------------------------------------------------------------------------------------------
def _truncated_gz(path):
    image = sitk.GetImageFromArray((np.arange(20 * 30 * 40).reshape(20, 30, 40) % 1000 + 1).astype(np.int16))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), True)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])


def _zero_spacing(path):
    import gzip
    import struct

    _write(path)  # a float32 NIfTI-1 written by ITK, little-endian
    header = bytearray(gzip.decompress(path.read_bytes()))
    assert struct.unpack_from("<i", header, 0)[0] == 348
    struct.pack_into("<f", header, 80, 0.0)  # pixdim[1]
    path.write_bytes(gzip.compress(bytes(header)))


class _Unreadable:
    """Make one file unreadable, also for root (who reads anything: then opening it is refused)."""

    def __init__(self, monkeypatch):
        self.monkeypatch = monkeypatch

    def __call__(self, path):
        import builtins
        import os

        _write(path)
        path.chmod(0)
        if os.geteuid() == 0:
            real_open = builtins.open

            def guarded_open(file, *args, **kwargs):
                if str(file) == str(path):
                    raise PermissionError(13, "Permission denied", str(file))
                return real_open(file, *args, **kwargs)

            self.monkeypatch.setattr(builtins, "open", guarded_open)


@pytest.mark.parametrize("spoil, message", [
    (_truncated_gz, "truncated or corrupt gzip stream"),
    (_zero_spacing, "voxel spacing (pixdim)"),
    ("unreadable", "cannot be read: permission denied"),
])
def test_import_refuses_and_check_reports_what_itk_lets_through(tmp_path, monkeypatch, capsys,
                                                                  spoil, message):
    from RobustDeepLogic.cli.main import main

    spoil = _Unreadable(monkeypatch) if spoil == "unreadable" else spoil
    src = tmp_path / "src"
    _write(src / "P001" / "FD.nii.gz", 3.0)
    bad = src / "P002" / "FD.nii.gz"
    spoil(bad)
    assert main(["cohort", "import", str(src), str(tmp_path / "out"), "--progress", "none"]) == 2
    err = capsys.readouterr().err
    assert message in err and str(bad) in err and "not found" not in err and "exist" not in err

    # The same file inside a cohort: check names it (and modifies nothing).
    cohort = write_tiny_cohort(tmp_path / "c", n=2, modalities=("FD",), tasks=())
    target = cohort.path("P002", "FD")
    target.unlink()
    spoil(target)
    problems = check_cohort(cohort)
    assert [(p.patient, p.modality, p.file) for p in problems] == [("P002", "FD", str(target))]
    assert message in problems[0].message
    assert main(["cohort", "check", str(tmp_path / "c"), "--progress", "none"]) == 2
    assert message in capsys.readouterr().out


def test_import_whose_check_finds_an_error_exits_2(tmp_path, capsys):
    """Issue 15 #13: 'P002 FD is identical to P001's' was counted as an error, yet the exit was 0."""
    from RobustDeepLogic.cli.main import main

    src = tmp_path / "src"
    _write(src / "P001" / "FD.nii.gz", 3.0)
    _write(src / "P002" / "FD.nii.gz", 3.0)  # the same image: a duplicated patient
    before = file_digest(src)
    out = tmp_path / "out"
    assert main(["cohort", "import", str(src), str(out), "--progress", "none"]) == 2
    captured = capsys.readouterr()
    assert "P002 FD: FD image is identical to patient P001's" in captured.out
    assert "1 error(s)" in captured.err and str(out) in captured.err
    assert file_digest(src) == before  # originals untouched
    # What was written is whole: a cohort that loads, whose check gives the same error.
    problems = check_cohort(Cohort.load(out))
    assert [(p.patient, "identical" in p.message) for p in problems] == [("P002", True)]
    # Distinct images: exit 0.
    _write(src / "P002" / "FD.nii.gz", 4.0)
    assert main(["cohort", "import", str(src), str(tmp_path / "out2"), "--progress", "none"]) == 0


@pytest.mark.parametrize("folder, suggestion", [("Jörg Müller", "Jorg_Muller"), ("patient 01", "patient_01")])
def test_a_patient_folder_breaking_the_id_rule_is_named_with_the_rule(tmp_path, capsys, folder, suggestion):
    """Issue 15 #16: the error named neither the folder nor the rule it breaks."""
    from RobustDeepLogic.cli.main import main

    src = tmp_path / "src"
    _write(src / folder / "FD.nii.gz")
    _write(src / folder / "LD.nii.gz")
    found, skipped = discover(src)
    assert found == {} and len(skipped) == 1  # one line for the folder, not one per file
    assert main(["cohort", "import", str(src), str(tmp_path / "out"), "--progress", "none"]) == 2
    err = capsys.readouterr().err
    assert str(src / folder) in err
    assert "ASCII letters, digits, '.', '_' and '-'" in err
    assert repr(suggestion) in err
