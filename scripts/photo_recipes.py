"""The same photo folder trained cached, streamed and squashed: does data.cache change the science?

Writes an npz of photos (default: the CIFAR-10 subset) as a folder of PNGs, then fine-tunes the
quickstart recipe (ImageNet Lite0, flips) on it once per variant, everything else equal, and prints
test accuracy, time and the decode cache's bytes per image:

    PYTHONPATH=. python scripts/photo_recipes.py --npz ../shared/data/cifar10_subset_train.npz \\
        --root /tmp/photo_recipes [--image_size 64] [--epochs 3] [--variants crop:cache,crop:stream,squash:cache]

Run it from another checkout (PYTHONPATH=that checkout) to measure that version's recipes; a
version without ``data.resize`` ignores the key (its folders squash when cached, crop when streamed).
"""

import argparse
import glob
import json
import os
import time

import numpy as np
from PIL import Image

from configs import quickstart
from tl_jax.train import trainer


def write_folder(npz: str, root: str) -> str:
  folder = os.path.join(root, "images")
  if not os.path.exists(os.path.join(folder, ".done")):
    with np.load(npz) as f:
      x, y = f["x"], f["y"]
      names = [str(n) for n in f["label_names"]] if "label_names" in f else [str(c) for c in range(int(y.max()) + 1)]
    for i, (image, label) in enumerate(zip(x, y)):
      os.makedirs(os.path.join(folder, names[label]), exist_ok=True)
      Image.fromarray(image).save(os.path.join(folder, names[label], f"{i:05d}.png"))
    open(os.path.join(folder, ".done"), "w").close()
  return folder


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--npz", required=True)
  parser.add_argument("--root", default="/tmp/photo_recipes")
  parser.add_argument("--image_size", type=int, default=64)
  parser.add_argument("--epochs", type=int, default=3)
  parser.add_argument("--variants", default="crop:cache,crop:stream,squash:cache")
  parser.add_argument("--tag", default="", help="a name for this checkout's rows")
  args = parser.parse_args()
  folder = write_folder(args.npz, args.root)
  print("| version | data.resize | read | test acc (final) | test acc (best by val) | time s | cache bytes / image |")
  print("|---|---|---|---|---|---|---|")
  for variant in args.variants.split(","):
    resize, read = variant.split(":")
    cfg = quickstart.get_config()
    cfg.unlock()
    cache_dir = os.path.join(args.root, f"cache_{args.tag}_{resize}")
    cfg.data.update(name="folder", path=folder, image_size=args.image_size, test_fraction=0.3, val_fraction=0.1,
                    cache=read == "cache", cache_dir=cache_dir, resize=resize)
    cfg.augment.horizontal_flip = True
    cfg.train.num_epochs = args.epochs
    workdir = os.path.join(args.root, f"run_{args.tag}_{resize}_{read}")
    t0 = time.time()
    summary = trainer.train_and_evaluate(cfg, workdir)
    seconds = time.time() - t0
    entries = glob.glob(os.path.join(cache_dir, "folder", "*", "images.npy"))
    per_image = ""
    if read == "cache" and entries:
      arr = np.load(entries[0], mmap_mode="r")
      per_image = f"{arr[0].nbytes:,} ({'x'.join(map(str, arr.shape[1:]))})"
    print(f"| {args.tag} | {resize} | {read} | {summary['final_test_accuracy']:.4f} | "
          f"{summary.get('best_test_accuracy', float('nan')):.4f} | {seconds:.0f} | {per_image} |", flush=True)
    with open(os.path.join(workdir, "variant.json"), "w") as f:
      json.dump({"variant": variant, "tag": args.tag, **summary, "seconds": seconds}, f)


if __name__ == "__main__":
  main()
