"""Deployment: everything between a trained model and translated images, importing no training code.

Modules, bottom to top (each imports only modules listed before it):

- `sessions`: the one ONNX Runtime session factory, and the providers this machine can start;
- `tiling`: the tile check, padding (reflection where possible), huge images in blended tiles;
  `inference`: padding to the size multiple and cropping back;
- `onnx_common`: what both exporters share (options, parity bounds and reports, float16 wrapper,
  common metadata, files written under temporary names);
- `text_runner`: `OnnxTextModel`, exported text models on ONNX Runtime;
- `text_export`: text models (text2image, textcycle) to ONNX;
- `export`: image generators to ONNX (`export_onnx`, which hands text models to `text_export`);
- `onnx_cache`: ONNX copies of PyTorch models, exported once into the cache;
- `quantize`: checked int8 copies for CPUs with VNNI;
- `selection`: what "auto" means for device, precision, backend and providers, from injected
  `Capabilities`, and the checks of those choices;
- `backends`: a model behind one call on PyTorch or ONNX Runtime, at a chosen precision (`make_backend`);
- `translator`: `Translator`, for PIL images, numpy arrays and tensors;
- `folder_io`: decoding, encoding and batching for folder conversion; `convert`: `convert_folder`.
- `bundle`: a trained model as a float16 weights folder to ship, with samples, a card and the
  float16-vs-float32 check (`bundle_model`).
"""
