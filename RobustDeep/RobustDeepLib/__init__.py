"""Glue between the RobustDeep Slicer module and its engine (``RobustDeepLogic``).

- ``engine``: where the engine is, and the ``robustdeep`` command lines the module runs.
- ``process``: a command in a separate process, its JSON progress lines read by a thread, cancel.
- ``stages``: the engine calls behind quick previews (blend, masks, review), on SimpleITK images.
- ``dependencies``: torch through the PyTorch extension, the other packages with pip, on request.
- ``mrml``: volume nodes <-> SimpleITK (RAS <-> LPS), segmentations <-> masks, overlays, colours,
  tables and plots. Needs MRML (Slicer, or the ``slicer-core`` wheel), never Qt.

Nothing is imported here: ``import RobustDeepLib`` stays cheap and free of Slicer, so that the Qt-free
parts are tested with plain pytest.
"""
