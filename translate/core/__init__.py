"""The bottom layer: facts and helpers that every other package uses, importing none of them.

- `paths`: the well-known folders (bundled models, installed models, the cache).
- `device`: device choice and what the CPU and GPU can do (`Capabilities`), with an override
  for tests and odd machines.
- `files`: atomic writes and sha256 (standard library only); `torch_files`: reading torch files
  without running pickled code; `safe_pickle`: the same for pickles of numpy arrays.
- `images`: [-1, 1] <-> uint8 and PIL <-> tensor conversions, written once.
- `errors`: typed errors that name the parameter, the bad value and the allowed values.
"""
