"""Deployment: everything between a trained model and translated images, importing no training code.

- `inference` (padding to the size multiple), `tiling` (huge images in blended tiles);
- `export` (image generators to ONNX), `text_export` (text models to ONNX and their runner),
  `sessions` (the one ONNX Runtime session factory), `quantize` (int8);
- `backends` (a model behind one call on PyTorch or ONNX Runtime, at a chosen precision),
  `translator` (`Translator`: PIL / numpy / tensors), `convert` (whole folders).
"""
