"""QuantScope's benchmarks: `python -m benchmarks` (or `tox -e bench`); never part of the test suite.

- `library`: the library call against a bare in-memory dynamo export of the same model;
- `offline`: the offline analysis of an ONNX file against parsing it, on exported and synthetic graphs;
- `huge`: Llama-shaped models on the meta device, wall time and peak RSS in fresh processes;
- `memory`: the extra peak RSS of the library call on a materialized model.
"""
