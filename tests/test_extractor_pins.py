"""What every user's cache depends on stays put: the config hash of each extractor (stored beside every cached
feature; a new value means every cached file is computed again) and the names of the weights entries."""
import hashlib
import json

import pytest

from hl.extract import extractors as ex
from hl.extract import weights as W


def config_hash(config: dict) -> str:
    """The cache's config hash (hl.pipelines.cache.config_hash), restated so that this pin does not move with it."""
    return hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


# config_hash(extractor_config(get_extractor(name), RunSettings("cpu", precision), "fixed:2"))
PINNED_HASHES = {
    ("i3d", "fp32"): "8fa7ef20ec04bfa9",
    ("i3d", "bf16"): "2cd84ee0d655de4c",
    ("i3d_flow", "fp32"): "9e8ff28579bdc204",
    ("i3d_flow", "bf16"): "428b6178692f7f5d",
    ("i3d_flow_tvl1", "fp32"): "3e12bdc37780d264",
    ("i3d_flow_tvl1", "bf16"): "66d98216d0529194",
    ("i3d_flow_raft", "fp32"): "5b88fc2683ba0206",
    ("i3d_flow_raft", "bf16"): "09a68fc60bef62d1",
    ("i3d_flow_raft_small", "fp32"): "87ba740f444d6c99",
    ("i3d_flow_raft_small", "bf16"): "b3ea6d77981296bb",
    ("i3d_flow_raft_vf", "fp32"): "cef9881ad2466702",
    ("i3d_flow_raft_vf", "bf16"): "2d0f1e46adb2448d",
    ("c3d", "fp32"): "5ec5a161dbfd71f3",
    ("c3d", "bf16"): "a433f4f6554a2257",
    ("r3d34", "fp32"): "d470eee1a2ea7cc7",
    ("r3d34", "bf16"): "1a5ea2ac7c07de69",
    ("pann", "fp32"): "a52cafa8f1cb35bc",
    ("pann", "bf16"): "bf07be32241de291",
    ("tased", "fp32"): "e777bdbd454ad4e0",
    ("tased", "bf16"): "fbc96058104195f5",
    ("tased_maps", "fp32"): "1dda132f2b62abb5",
    ("tased_maps", "bf16"): "6c88eda11ac568bd",
    ("c3d_maps", "fp32"): "5aea6e74055016bf",
    ("c3d_maps", "bf16"): "4b856be0c7f47fc7",
    ("c3d_maps_static", "fp32"): "c65f3e6d6a12e9b9",
    ("c3d_maps_static", "bf16"): "12be160dd82b4101",
    ("tased_maps_static", "fp32"): "2ddeebff2d3e1ce6",
    ("tased_maps_static", "bf16"): "965d54e6b8bc4eac",
    ("stats", "fp32"): "0c14ce46b5d1277e",
    ("stats", "bf16"): "0c14ce46b5d1277e",
    ("stats_audio", "fp32"): "c239f4a8fea16255",
    ("stats_audio", "bf16"): "c239f4a8fea16255",
    ("motion_saliency", "fp32"): "d77f74748e5147c4",
    ("motion_saliency", "bf16"): "d77f74748e5147c4",
}


@pytest.mark.parametrize("name, precision", sorted(PINNED_HASHES))
def test_extractor_config_hash_is_pinned(name, precision):
    cfg = ex.extractor_config(ex.get_extractor(name), ex.RunSettings("cpu", precision), "fixed:2")
    assert config_hash(cfg) == PINNED_HASHES[name, precision], cfg


def test_every_extractor_has_a_pinned_hash():
    assert {name for name, _ in PINNED_HASHES} == set(ex.EXTRACTORS)


def test_extractor_configs_in_full():
    assert ex.extractor_config(ex.get_extractor("c3d"), ex.RunSettings("cpu", "bf16"), "fixed:2") == {
        "backbone": "c3d", "clip_frames": 16, "extractor": "c3d", "feature_layer": "fc6 after ReLU", "format": 2,
        "fps": 8.0, "frame_resize": "uint8", "input_size": [112, 112], "output": "features", "precision": "bf16",
        "sample_rate": 0, "sampling": "segment", "segments": "fixed:2", "short_side": 256,
    }
    tased = ex.extractor_config(ex.get_extractor("tased"), ex.RunSettings("cpu", "fp32"), "manifest:abc")
    assert tased == {
        "backbone": "tased", "clip_frames": 32, "extractor": "tased",
        "feature_layer": "saliency map of the last frame (sigmoid)", "format": 2, "fps": 0.0,
        "frame_resize": "uint8", "input_size": [224, 384], "output": "saliency", "precision": "fp32",
        "sample_rate": 0, "sampling": "window", "segments": "manifest:abc", "short_side": 256, "target_rate": 2.0,
    }
    assert config_hash(tased) == "81951d530cd8888b"


def test_the_cache_hashes_configs_the_same_way():
    from hl.pipelines.cache import config_hash as cache_config_hash

    cfg = ex.extractor_config(ex.get_extractor("pann"), ex.RunSettings("cpu", "fp32"), "fixed:2")
    assert cache_config_hash(cfg) == config_hash(cfg)


def test_weights_entries_are_pinned():
    assert [(e.name, e.backbone, e.file_name, e.direct, e.size) for e in W.REGISTRY.values()] == [
        ("i3d_rgb_imagenet", "i3d", "rgb_imagenet.pt", True, 50883138),
        ("i3d_rgb_charades", "i3d", "rgb_charades.pt", True, None),
        ("i3d_flow_imagenet", "i3d_flow", "flow_imagenet.pt", True, None),
        ("i3d_flow_charades", "i3d_flow", "flow_charades.pt", True, None),
        ("raft_large_c_t_skht_v2", "raft_large", "raft_large_C_T_SKHT_V2-ff5fadd5.pth", True, None),
        ("raft_large_c_t_skht_v1", "raft_large", "raft_large_C_T_SKHT_V1-0b8c9e55.pth", True, None),
        ("raft_large_c_t_v2", "raft_large", "raft_large_C_T_V2-1bb1363a.pth", True, None),
        ("raft_large_sintel", "raft_large", "raft-sintel.pth", False, None),
        ("raft_large_things", "raft_large", "raft-things.pth", False, None),
        ("raft_small_c_t_v2", "raft_small", "raft_small_C_T_V2-01064c6d.pth", True, None),
        ("raft_small_c_t_v1", "raft_small", "raft_small_C_T_V1-ad48884c.pth", True, None),
        ("raft_small_things", "raft_small", "raft-small.pth", False, None),
        ("c3d_sports1m", "c3d", "c3d.pickle", True, None),
        ("r3d34_kinetics", "r3d34", "resnet-34-kinetics.pth", False, None),
        ("pann_cnn14", "pann", "Cnn14_mAP=0.431.pth", True, 327428481),
        ("tased_dhf1k", "tased", "TASED_updated.pt", False, None),
    ]
    assert W.REGISTRY["i3d_rgb_imagenet"].sha256 == "2609088c2e8c868187c9921c50bc225329a9057ed75e76120e0b4a397a2c7538"
    assert W.REGISTRY["pann_cnn14"].sha256 == "0dc499e40e9761ef5ea061ffc77697697f277f6a960894903df3ada000e34b31"
    assert sum(e.sha256 is not None for e in W.REGISTRY.values()) == 2
    # torchvision publishes the first 8 hex digits of each file's sha256 in its name
    assert {e.name: e.sha256_prefix for e in W.REGISTRY.values() if e.sha256_prefix} == {
        "raft_large_c_t_skht_v2": "ff5fadd5", "raft_large_c_t_skht_v1": "0b8c9e55", "raft_large_c_t_v2": "1bb1363a",
        "raft_small_c_t_v2": "01064c6d", "raft_small_c_t_v1": "ad48884c"}


def test_extractors_are_pinned():
    # the order is the backbones' registration order (hl.extract.backbones); before the definitions moved into
    # the backbone modules c3d_maps was listed after tased_maps: nothing depends on where window extractors are
    assert [(d.name, d.backbone, d.sampling, d.output, d.target_rate, d.needs_weights)
            for d in ex.EXTRACTORS.values()] == [
        ("i3d", "i3d", "segment", "features", 2.0, True),
        ("i3d_flow", "i3d_flow_frames", "segment", "features", 2.0, True),
        ("i3d_flow_tvl1", "i3d_flow_tvl1_frames", "segment", "features", 2.0, True),
        ("i3d_flow_raft", "i3d_flow_raft_frames", "segment", "features", 2.0, True),
        ("i3d_flow_raft_small", "i3d_flow_raft_small_frames", "segment", "features", 2.0, True),
        ("i3d_flow_raft_vf", "i3d_flow_raft_vf_frames", "segment", "features", 2.0, True),
        ("c3d", "c3d", "segment", "features", 2.0, True),
        ("c3d_maps", "c3d_maps", "window", "maps", 2.0, True),
        ("r3d34", "r3d34", "segment", "features", 2.0, True),
        ("pann", "pann", "audio", "features", 2.0, True),
        ("tased", "tased", "window", "saliency", 2.0, True),
        ("tased_maps", "tased_maps", "window", "maps", 2.0, True),
        ("c3d_maps_static", "c3d_maps_static", "window", "maps", 2.0, True),
        ("tased_maps_static", "tased_maps_static", "window", "maps", 2.0, True),
        ("stats", "stats", "segment", "features", 2.0, False),
        ("stats_audio", "stats_audio", "audio", "features", 2.0, False),
        ("motion_saliency", "motion_saliency", "window", "saliency", 2.0, False),
    ]
    # what `hl extract` picks by default keeps its order: the pretrained segment and audio extractors
    assert [d.name for d in ex.EXTRACTORS.values() if d.needs_weights and d.sampling != "window" and d.default] == [
        "i3d", "i3d_flow", "c3d", "r3d34", "pann"]
    assert ex.FALLBACKS == {"tased": "motion_saliency"}
    assert ex.WEIGHT_FREE == ("stats", "stats_audio")
    assert ex.get_extractor("c3d_maps").description == (
        "C3D conv5b maps of the 16 frames ending at each target frame, float16")


@pytest.mark.parametrize("hw", [(240, 320), (97, 301)])
def test_frame_sizes_are_pinned(hw):
    from hl.extract.backbones import list_backbones

    rules = {b: ex.frame_resize(b, *hw) for b in list_backbones()}
    expected = {
        (240, 320): {"c3d": ((128, 171), True), "i3d": ((256, 341), True), "r3d34": ((112, 149), True)},
        (97, 301): {"c3d": ((128, 171), True), "i3d": ((256, 794), True), "r3d34": ((112, 347), True)},
    }[hw]
    expected |= {"c3d_maps": expected["c3d"], "c3d_maps_static": expected["c3d"], "i3d_flow_frames": expected["i3d"],
                 "i3d_flow_tvl1_frames": expected["i3d"], "i3d_flow_raft_frames": expected["i3d"],
                 "i3d_flow_raft_small_frames": expected["i3d"],
                 "i3d_flow_raft_vf_frames": expected["i3d"],
                 "tased": ((224, 384), False), "tased_maps": ((224, 384), False),
                 "tased_maps_static": ((224, 384), False), "stats": ((64, 64), True),
                 "motion_saliency": ((224, 384), True)}
    assert {b: r for b, r in rules.items() if r is not None and not b.startswith("_")} == expected
