"""Metric networks: forward shapes, published key names, strict loading, clear failures."""

import hashlib

import pytest
import torch

from magicanimate.errors import WeightsError
from magicanimate.evaluation.networks import FIDInceptionV3, InceptionI3D, LPIPSVGG, ResNet3D50
from magicanimate.evaluation.weights import (
    WEIGHT_FILES, build_network, load_published, load_strict, read_state_dict, weight_path,
)


def _params(state):
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


# ----------------------------------------------------------------------------------- forward shapes

def test_inception_forward_shape_at_299():
    model, record = build_network("inception", random_init=True)
    assert record == {"inception": "RANDOM"}
    out = model(torch.rand(1, 3, 299, 299))
    assert out.shape == (1, 2048) and torch.isfinite(out).all()
    # pool3 follows a ReLU: features are non-negative
    assert (out >= 0).all()


def test_lpips_forward_shape_and_zero_on_identical():
    model, _ = build_network("lpips", random_init=True)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    d = model(x, x)
    assert d.shape == (2,) and torch.all(d == 0)
    assert torch.all(model(x, x.flip(-1)) > 0)


def test_resnet3d_forward_shape_at_16x112():
    model, _ = build_network("resnet3d", random_init=True)
    x = torch.rand(1, 3, 16, 112, 112) * 255 - 110
    assert model.features(x).shape == (1, 2048)
    assert model(x).shape == (1, 400)


def test_i3d_forward_shape_at_224_short_clip():
    model, _ = build_network("i3d", random_init=True)
    out = model(torch.rand(1, 3, InceptionI3D.MIN_FRAMES, 224, 224) * 2 - 1)
    assert out.shape == (1, 400) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="frames"):
        model(torch.rand(1, 3, 4, 224, 224))


def test_random_init_is_seeded():
    a, _ = build_network("i3d", random_init=True, seed=3)
    b, _ = build_network("i3d", random_init=True, seed=3)
    c, _ = build_network("i3d", random_init=True, seed=4)
    wa, wb, wc = (m.Mixed_4b.b1b.conv3d.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


# ------------------------------------------------------------------------------ published key names
# Names and shapes below are those of the published files (torchvision / pytorch-fid / Hara / piergiaj
# layouts), written out independently of the module definitions.

@pytest.mark.parametrize("cls, expected, count", [
    (FIDInceptionV3, {
        "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3), "Conv2d_4a_3x3.bn.running_var": (192,),
        "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1), "Mixed_6b.branch7x7dbl_5.conv.weight": (192, 128, 1, 7),
        "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3), "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
        "Mixed_7c.branch3x3dbl_3b.bn.bias": (384,), "Mixed_7b.branch3x3dbl_1.conv.weight": (448, 1280, 1, 1),
        "fc.weight": (1008, 2048), "fc.bias": (1008,),
    }, 94 * 5 + 2),  # 94 conv units (conv + 4 BN tensors) and the fc
    (ResNet3D50, {
        "conv1.weight": (64, 3, 7, 7, 7), "layer1.0.downsample.0.weight": (256, 64, 1, 1, 1),
        "layer2.0.conv2.weight": (128, 128, 3, 3, 3), "layer4.2.conv3.weight": (2048, 512, 1, 1, 1),
        "layer3.5.bn3.running_mean": (1024,), "fc.weight": (400, 2048),
    }, 5 + 53 * 5 - 4 + 2 - 1 + 2),  # filled by count below
    (InceptionI3D, {
        "Conv3d_1a_7x7.conv3d.weight": (64, 3, 7, 7, 7), "Conv3d_2c_3x3.bn.running_var": (192,),
        "Mixed_3b.b1b.conv3d.weight": (128, 96, 3, 3, 3), "Mixed_4f.b3b.conv3d.weight": (128, 528, 1, 1, 1),
        "Mixed_5c.b2b.bn.weight": (128,), "logits.conv3d.weight": (400, 1024, 1, 1, 1), "logits.conv3d.bias": (400,),
    }, 3 * 5 + 9 * 6 * 5 + 2),
])
def test_key_names_and_shapes(cls, expected, count):
    with torch.device("meta"):
        state = _params(cls().state_dict())
    for name, shape in expected.items():
        assert name in state, name
        assert tuple(state[name].shape) == shape, name
    if cls is ResNet3D50:
        # conv1+bn1, 16 bottlenecks x 3 convs+BNs, 4 downsample conv+BN, fc: (1 + 48 + 4) * 5 + 2
        count = (1 + 48 + 4) * 5 + 2
    assert len(state) == count


def test_lpips_key_names():
    with torch.device("meta"):
        model = LPIPSVGG()
    backbone = model.net.state_dict()
    convs = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    assert set(backbone) == {f"features.{i}.{p}" for i in convs for p in ("weight", "bias")}
    assert tuple(backbone["features.28.weight"].shape) == (512, 512, 3, 3)
    heads = {k: v for k, v in model.state_dict().items() if k.startswith("lin")}
    assert {k: tuple(v.shape) for k, v in heads.items()} == {
        f"lin{i}.model.1.weight": (1, c, 1, 1) for i, c in enumerate((64, 128, 256, 512, 512))}


# -------------------------------------------------------------------------------- strict file loading

def _save_published_layout(tmp_path, key, state):
    path = tmp_path / WEIGHT_FILES[key].filename
    torch.save(state, path)
    return path


def _tagged(state):
    """One distinct constant per tensor, stored as a zero-stride view: the file stays tiny, and a value
    loaded into the wrong parameter would show."""
    return {k: torch.full((1,), float(i + 1)).expand(*v.shape) if v.dim() else v.clone()
            for i, (k, v) in enumerate(_params(state).items())}


def test_published_layouts_load_strictly(tmp_path):
    with torch.device("meta"):
        inc, res, i3d, lp = FIDInceptionV3(), ResNet3D50(), InceptionI3D(), LPIPSVGG()
    inc_sd, res_sd, i3d_sd = _tagged(inc.state_dict()), _tagged(res.state_dict()), _tagged(i3d.state_dict())
    # pytorch-fid: a flat state dict without num_batches_tracked (saved by an old torch)
    _save_published_layout(tmp_path, "inception", inc_sd)
    # Hara: {"state_dict": {"module." + key}} plus training metadata
    _save_published_layout(tmp_path, "resnet3d50", {
        "epoch": 200, "arch": "resnet-50", "state_dict": {"module." + k: v for k, v in res_sd.items()}})
    # I3D: flat, here with num_batches_tracked as a recent torch saves it
    _save_published_layout(tmp_path, "i3d", {**i3d_sd, "Conv3d_1a_7x7.bn.num_batches_tracked": torch.tensor(0)})
    # torchvision VGG16 with its classifier
    vgg = _tagged(lp.net.state_dict())
    for name, shape in WEIGHT_FILES["vgg16"].allowlisted:
        vgg[name] = torch.zeros(1).expand(*shape)
    _save_published_layout(tmp_path, "vgg16", vgg)
    heads = _tagged({k: v for k, v in lp.state_dict().items() if k.startswith("lin")})
    _save_published_layout(tmp_path, "lpips_vgg", heads)
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) < 5_000_000

    expected = {"inception": inc_sd, "resnet3d": res_sd, "i3d": i3d_sd,
                "lpips": {**{f"net.{k}": v for k, v in vgg.items() if k.startswith("features")}, **heads}}
    for name, state in expected.items():
        model, record = build_network(name, tmp_path, verify_hash=False)
        assert all(str(tmp_path) in p for p in record.values())
        loaded = _params(model.state_dict())
        assert set(loaded) == set(state), name
        for k, v in state.items():
            assert torch.equal(loaded[k], v.expand_as(loaded[k])), (name, k)


def test_missing_file_names_it_and_where_it_is_published(tmp_path):
    with pytest.raises(WeightsError) as info:
        weight_path(tmp_path, "inception")
    message = str(info.value)
    assert "pt_inception-2015-12-05-6726825d.pth" in message
    assert "github.com/mseitzer/pytorch-fid" in message and "6726825d" in message
    with pytest.raises(WeightsError, match="vgg16-397923af.pth.*553433881 bytes"):
        build_network("lpips", tmp_path)
    with pytest.raises(WeightsError, match="no --weights-dir"):
        build_network("i3d", None)


def test_wrong_keys_are_named(tmp_path):
    state = _params(InceptionI3D().state_dict())
    state["Mixed_4b.b1b.conv3d.weight_renamed"] = state.pop("Mixed_4b.b1b.conv3d.weight")
    _save_published_layout(tmp_path, "i3d", state)
    with pytest.raises(WeightsError) as info:
        build_network("i3d", tmp_path)
    message = str(info.value)
    assert "i3d_pretrained_400.pt" in message
    assert "missing keys: Mixed_4b.b1b.conv3d.weight" in message
    assert "unexpected keys: Mixed_4b.b1b.conv3d.weight_renamed" in message


def test_wrong_shape_and_wrong_network_fail(tmp_path):
    model = ResNet3D50()
    state = _params(model.state_dict())
    state["fc.weight"] = torch.zeros(600, 2048)
    state["fc.bias"] = torch.zeros(600)
    with pytest.raises(WeightsError, match=r"fc.weight: file \(600, 2048\) vs model \(400, 2048\)"):
        load_strict(model, state, source="x.pth")
    # an I3D file where the 3D ResNet is expected
    _save_published_layout(tmp_path, "resnet3d50", _params(InceptionI3D().state_dict()))
    with pytest.raises(WeightsError, match="resnet-50-kinetics.pth: does not match ResNet3D50"):
        build_network("resnet3d", tmp_path)


def test_allowlisted_classifier_is_checked(tmp_path):
    lp = LPIPSVGG()
    vgg = dict(lp.net.state_dict())  # classifier absent
    with pytest.raises(WeightsError, match="missing \\(allowlisted, unused\\) classifier.0.weight"):
        load_strict(lp.net, vgg, source="vgg16-397923af.pth", allowlisted=WEIGHT_FILES["vgg16"].allowlisted)


def test_not_a_weight_file_and_hash_mismatch(tmp_path):
    path = tmp_path / WEIGHT_FILES["i3d"].filename
    path.write_bytes(b"this is not a pickle")
    with pytest.raises(WeightsError, match="not a readable PyTorch weight file"):
        read_state_dict(path)
    inc_path = tmp_path / WEIGHT_FILES["inception"].filename
    torch.save({"a": torch.zeros(1)}, inc_path)
    assert not hashlib.sha256(inc_path.read_bytes()).hexdigest().startswith("6726825d")
    with pytest.raises(WeightsError, match="does not start with 6726825d"):
        load_published(FIDInceptionV3(), tmp_path, "inception")
