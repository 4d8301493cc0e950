"""memscope's benchmarks: retrieval and ingest latency, LoCoMo retrieval recall and answer quality.

Run them with `memscope bench ...` from a source checkout (this package is not installed with memscope).
"""
