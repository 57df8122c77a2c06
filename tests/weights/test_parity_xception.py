"""Xception parity: Keras 3 ``keras.applications.Xception`` (JAX backend) vs tl_jax at 75 px,
logits and pooled features, both .h5 key layouts, max |difference| <= 1e-4 (float32)."""

from keras_parity import keras_check


def test_xception_keras_parity(tmp_path):
  keras_check("keras_xception", "Xception", "xception", "avg_pool", tmp_path, size=75, he=True)
