"""Benchmark stage: latency, throughput and accuracy of models on this host, side by side.

``run`` measures (``benchmark_models``), ``report`` renders a table and writes JSON.
"""
