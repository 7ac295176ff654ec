"""The web demo's logic (``scripts/app.py``), importable without Gradio.

* :mod:`magicanimate.app.models`: the models the page offers (the bundled demo, weights folders) and the
  cache that loads each one once.
* :mod:`magicanimate.app.uploads`: quick checks of uploaded files, and conversion of a raw motion video to
  DensePose with the extraction backend.
* :mod:`magicanimate.app.jobs`: the job function (settings -> the same files as ``scripts/animate.py``),
  progress and cancellation, and the per-model queue that runs one job at a time.
* :mod:`magicanimate.app.ui`: the Gradio page (the only module that imports Gradio).
"""
