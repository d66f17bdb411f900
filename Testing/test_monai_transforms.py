"""The MONAI-style blending transforms inside real MONAI pipelines (MONAI is the reference for their
contract: a MetaTensor goes in, a MetaTensor with the same affine and metadata comes out)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from RobustDeepLogic import synthesis as S
from RobustDeepLogic.blending.blend import laplacian_blend

monai = pytest.importorskip("monai")
from monai.data import MetaTensor  # noqa: E402
from monai.transforms import (  # noqa: E402
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    Spacing,
    Spacingd,
)

SHAPE = (12, 14, 10)
# An RAS affine of 2 x 3 x 4 mm voxels with an offset: a transform that lost it would see 1 mm voxels.
AFFINE = np.array([[2.0, 0, 0, -11.0], [0, 3.0, 0, 5.0], [0, 0, 4.0, 7.0], [0, 0, 0, 1.0]])
PIXDIM = (4.0, 6.0, 8.0)


def smooth(rng, offset=0.0):
    return (ndimage.gaussian_filter(rng.standard_normal(SHAPE), 1.5) * 3 + offset).astype(np.float32)


def meta_image(arr, name):
    return MetaTensor(torch.from_numpy(arr.copy()), affine=torch.from_numpy(AFFINE),
                      meta={"filename_or_obj": f"{name}.nii.gz", "patient": name})


@pytest.fixture()
def arrays(rng):
    mask = np.zeros(SHAPE, np.float32)
    mask[..., :5] = 1
    return {"FD": smooth(rng, 2), "FD_partner": smooth(rng, 1), "CT": smooth(rng), "CT_partner": smooth(rng),
            "mask": mask}


def assert_meta_kept(out, name):
    assert isinstance(out, MetaTensor)
    np.testing.assert_allclose(out.affine.numpy(), AFFINE)
    assert out.meta["filename_or_obj"] == f"{name}.nii.gz" and out.meta["patient"] == name


def test_dictionary_transform_keeps_metatensors_in_a_compose(arrays):
    keys = ["FD", "FD_partner", "CT", "CT_partner"]
    sample = {k: meta_image(arrays[k], k) for k in keys}
    pipeline = Compose([
        EnsureChannelFirstd(keys, channel_dim="no_channel"),
        EnsureTyped(keys, dtype=torch.float32, track_meta=True),
        S.LaplacianBlendd(["FD", "CT"], arrays["mask"], levels=2),
    ])
    out = pipeline(sample)
    assert set(out) == {"FD", "CT"}
    for key in ("FD", "CT"):
        assert_meta_kept(out[key], key)
        assert tuple(out[key].shape) == (1,) + SHAPE
        expected = laplacian_blend(arrays[key], arrays[key + "_partner"], arrays["mask"], 2)
        np.testing.assert_allclose(out[key][0].numpy(), expected, atol=1e-6)
    # the input's metadata is not shared with the output's
    out["FD"].meta["patient"] = "changed"
    assert sample["FD"].meta["patient"] == "FD"


def test_a_spatial_transform_after_the_blend_sees_the_input_geometry(arrays):
    keys = ["FD", "FD_partner"]
    sample = {k: meta_image(arrays[k], k) for k in keys}
    pipeline = Compose([
        EnsureChannelFirstd(keys, channel_dim="no_channel"),
        S.LaplacianBlendd("FD", arrays["mask"], levels=2),
        Spacingd("FD", pixdim=PIXDIM, mode="bilinear"),
    ])
    out = pipeline(sample)["FD"]
    # reference: MONAI's Spacing on the independently computed blend, given the input's affine
    blend = laplacian_blend(arrays["FD"], arrays["FD_partner"], arrays["mask"], 2)
    reference = Spacing(pixdim=PIXDIM, mode="bilinear")(MetaTensor(torch.from_numpy(blend[None]),
                                                                   affine=torch.from_numpy(AFFINE)))
    assert tuple(out.shape) == tuple(reference.shape)
    np.testing.assert_allclose(out.affine.numpy(), reference.affine.numpy())
    np.testing.assert_allclose(np.diag(out.affine.numpy())[:3], PIXDIM)
    np.testing.assert_allclose(out.numpy(), reference.numpy(), atol=1e-5)
    assert out.meta["filename_or_obj"] == "FD.nii.gz"


def test_array_transform_keeps_metatensors(arrays):
    img, partner = meta_image(arrays["FD"], "FD")[None], meta_image(arrays["FD_partner"], "FD_partner")[None]
    assert_meta_kept(img, "FD")
    expected = laplacian_blend(arrays["FD"], arrays["FD_partner"], arrays["mask"], 2)
    blend = S.LaplacianBlend(arrays["mask"], levels=2)
    out = blend(img, partner)
    assert_meta_kept(out, "FD")
    np.testing.assert_allclose(out[0].numpy(), expected, atol=1e-6)
    # in a Compose that unpacks (img, partner), followed by a MONAI spatial transform
    pipeline = Compose([blend, Spacing(pixdim=PIXDIM, mode="bilinear")], map_items=False, unpack_items=True)
    resampled = pipeline((img, partner))
    reference = Spacing(pixdim=PIXDIM, mode="bilinear")(MetaTensor(torch.from_numpy(expected[None]),
                                                                   affine=torch.from_numpy(AFFINE)))
    assert tuple(resampled.shape) == tuple(reference.shape)
    np.testing.assert_allclose(resampled.affine.numpy(), reference.affine.numpy())
    np.testing.assert_allclose(resampled.numpy(), reference.numpy(), atol=1e-5)
    # the naive blend keeps them too; numpy in, numpy out as before
    naive = S.LaplacianBlend(arrays["mask"], method="naive")(img, partner)
    assert_meta_kept(naive, "FD")
    m = arrays["mask"]
    np.testing.assert_allclose(naive[0].numpy(), m * arrays["FD"] + (1 - m) * arrays["FD_partner"], atol=1e-6)
    plain = blend(arrays["FD"], arrays["FD_partner"])
    assert isinstance(plain, np.ndarray)
    np.testing.assert_allclose(plain, expected, atol=1e-6)


def test_random_transform_keeps_metatensors(arrays):
    sample = {"FD": meta_image(arrays["FD"], "FD")[None]}
    partner = {"FD": meta_image(arrays["FD_partner"], "FD_partner")[None]}
    out = Compose([S.RandLaplacianBlendd("FD", [partner], arrays["mask"], levels=2, seed=0)])(sample)
    assert_meta_kept(out["FD"], "FD")
    expected = laplacian_blend(arrays["FD"], arrays["FD_partner"], arrays["mask"], 2)
    np.testing.assert_allclose(out["FD"][0].numpy(), expected, atol=1e-6)
