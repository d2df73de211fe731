"""Saved forms of a model and the one model locator.

- `locator.locate(model) -> ModelSource`: the only code that decides what a name or path is
  (bundled or installed name, weights folder, run directory, checkpoint file or `.onnx`; image or
  text; which directions).
- `folder`: the weights folder format (config.json + model.safetensors) every model, image or
  text, is written and read in: format name and version, the version check, storage dtypes.
- `weights`: image networks in weights folders, training checkpoints, `load()` of image models
  (`translate.load` also gives text models, through `translate.text.model`).
- `onnx_metadata`: the metadata our ONNX files carry.
"""
