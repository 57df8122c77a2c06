r"""Converts a PyTorch/safetensors/Keras weight file once into a ready-to-merge .msgpack.

  python scripts/convert_weights.py resnet50-0676ba61.pth weights/resnet50.msgpack \
      --model resnet50 [--source torchvision]

Then train with --config.init.path=weights/resnet50.msgpack: the run reads the
converted arrays directly (no key mapping, no torch-format parsing).
"""

from absl import app, flags

from tl_jax import weights

_MODEL = flags.DEFINE_string("model", None, "Registry name, e.g. resnet50.", required=True)
_SOURCE = flags.DEFINE_string("source", None, "Key layout (torchvision, timm, keras, ml_illustrated); "
                              "default: the model's.")


def main(argv):
  if len(argv) != 3:
    raise app.UsageError("Usage: convert_weights.py SRC DST --model NAME [--source S]")
  src, dst = argv[1:]
  n = weights.convert_file(_MODEL.value, src, dst, source=_SOURCE.value)
  print(f"Wrote {n} arrays for {_MODEL.value} to {dst}")


if __name__ == "__main__":
  app.run(main)
