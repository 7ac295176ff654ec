"""Speed and memory benchmarks of the pipeline; each writes its results to files (json + md).

* :mod:`.lengths`: seconds per frame and peak memory versus video length, on the tiny model.
"""
