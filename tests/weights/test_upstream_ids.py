"""Every timm hub id in the download table is one that timm publishes.

``TIMM_IDS``: the ``default_cfgs`` keys of timm's model files (``generate_default_cfgs``) for the
architectures tl_jax loads, read from huggingface/pytorch-image-models at commit aa4b5850c154
(timm 1.0.29.dev0): ``timm/models/resnet.py``, ``vgg.py``, ``efficientnet.py`` (mobilenetv2,
tf_efficientnet_lite/b*, tf_efficientnetv2), ``mobilenetv3.py``, ``regnet.py``, ``convnext.py``,
``resnetv2.py`` (BiT-M).
A hub repo exists for exactly these keys; any other id is a 404 for the user.
"""

from tl_jax import weights
from tl_jax.weights import published

TIMM_IDS = {
    "convnext_base.fb_in1k", "convnext_large.fb_in1k", "convnext_small.fb_in1k",
    "convnext_tiny.fb_in1k", "convnext_xlarge.fb_in22k_ft_in1k", "mobilenetv2_100.ra_in1k",
    "regnetx_004_tv.tv2_in1k", "regnetx_008.tv2_in1k", "regnetx_016.tv2_in1k",
    "regnetx_032.tv2_in1k", "regnetx_080.tv2_in1k", "regnetx_160.tv2_in1k", "regnetx_320.tv2_in1k",
    "regnety_004.tv2_in1k", "regnety_008_tv.tv2_in1k", "regnety_016.tv2_in1k",
    "regnety_032.tv2_in1k", "regnety_080_tv.tv2_in1k", "regnety_1280.swag_ft_in1k",
    "regnety_160.tv2_in1k", "regnety_320.tv2_in1k", "resnet101.tv_in1k", "resnet152.tv_in1k",
    *{f"resnetv2_{d}_bit.goog_in21k" for d in ("50x1", "50x3", "101x1", "101x3", "152x2", "152x4")},
    "resnet18.tv_in1k", "resnet34.tv_in1k", "resnet50.tv_in1k",
    # tf_efficientnet_b{0..5}: in1k, aa_in1k, ap_in1k, ns_jft_in1k (b5 also ra_in1k);
    # b6: aa_in1k, ap_in1k, ns_jft_in1k; b7: those and ra_in1k. No b6/b7 .in1k.
    *{f"tf_efficientnet_b{k}.{t}" for k in range(6) for t in ("in1k", "aa_in1k", "ap_in1k", "ns_jft_in1k")},
    "tf_efficientnet_b5.ra_in1k", "tf_efficientnet_b7.ra_in1k",
    *{f"tf_efficientnet_b{k}.{t}" for k in (6, 7) for t in ("aa_in1k", "ap_in1k", "ns_jft_in1k")},
    *{f"tf_efficientnet_lite{k}.in1k" for k in range(5)},
    *{f"tf_efficientnetv2_{v}.in1k" for v in ("b0", "b1", "b2", "b3", "s", "m", "l")},
    "tf_mobilenetv3_large_100.in1k", "tf_mobilenetv3_small_100.in1k",
    *{f"vgg{d}{bn}.tv_in1k" for d in (11, 13, 16, 19) for bn in ("", "_bn")},
}


def _hub_id(url: str) -> str:
  return url.split("huggingface.co/timm/", 1)[1].split("/", 1)[0]


def test_every_timm_source_is_a_published_hub_repo():
  urls = {key: s.url for key, s in weights.SOURCES.items() if "huggingface.co/timm/" in s.url}
  assert len(urls) >= 60, len(urls)
  unknown = {key: _hub_id(url) for key, url in urls.items() if _hub_id(url) not in TIMM_IDS}
  assert not unknown, unknown


def test_keras_efficientnet_twins_are_the_autoaugment_checkpoints():
  """Keras' EfficientNet .h5 files are the AutoAugment ones: their timm twin is .aa_in1k (B0-B7)."""
  for k in range(8):
    assert published.TIMM_NAMES[f"keras_efficientnet_b{k}"] == f"tf_efficientnet_b{k}.aa_in1k"
    assert weights.SOURCES[(f"keras_efficientnet_b{k}", "timm")].url == published.TIMM.format(
        f"tf_efficientnet_b{k}.aa_in1k")
