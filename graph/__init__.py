"""Exported graphs: torch export, ONNX loading, module mapping and the networkx form the analysis reads.

Nothing here imports torch at import time; `graph.export` does so inside its functions.
"""
