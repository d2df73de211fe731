"""Saved forms of a model and the one model locator.

- `locator.locate(model) -> ModelSource`: the only code that decides what a name or path is
  (bundled or installed name, weights folder, run directory, checkpoint file or `.onnx`; image or
  text; which directions).
- `weights`: image weights folders (config.json + model.safetensors), training checkpoints,
  `load()`.
- `text_folder`: text model folders (generator and text encoder tensors with their config).
- `onnx_metadata`: the metadata our ONNX files carry.
"""
