"""Glue between the RobustDeep Slicer module and its engine (``RobustDeepLogic``), and the module's panels.

Qt-free (tested with plain pytest; the ``mrml_*`` modules under the ``slicer-core`` wheel):

- ``engine``: where the engine is, and the ``robustdeep`` command lines the module runs.
- ``process``: a command in a separate process, its JSON progress lines read by a thread, cancel.
- ``process_tree``: no console window on Windows; the job's whole process tree ended on cancel.
- ``package_index``: whether pip's package index answers (the self-test's download steps).
- ``stages``: the engine calls behind quick previews (blend, masks, review), on SimpleITK images;
  ``bias``: the review's bias map made ready for a slice view (NaN outside the head).
- ``dependencies``: torch through the PyTorch extension, the other packages with pip, on request.
- ``choices``: the values of the module's parameters (modalities, tasks, ...), what an unset path is.
- ``mrml_volumes``: volume nodes <-> SimpleITK (RAS <-> LPS). ``mrml_segmentations``: segmentations
  <-> masks. ``mrml_views``: slice-view layers, the bias map's colours. ``mrml_tables``: table and plot
  nodes. These need MRML (Slicer, or the ``slicer-core`` wheel), never Qt: a program that is not
  Slicer (RobustDeep Studio, on slicer-core) imports them as ``RobustDeepLib.mrml_volumes`` etc. with
  this folder (``<clone>/RobustDeep``) on ``sys.path``.

With Slicer's Qt (imported by ``RobustDeep.py``):

- ``ui``: the .ui's widgets and helpers on them.
- ``<panel>_panel`` (``setup``, ``jobs``, ``cohort``, ``registration``, ``masks``, ``blend``, ``train``,
  ``review``): each panel's slots and computations, mixins of ``RobustDeepWidget`` / ``RobustDeepLogic``.
- ``selftest``: the steps of ``RobustDeepTest``.

Nothing is imported here: ``import RobustDeepLib`` stays cheap and free of Slicer, so that the Qt-free
parts are tested with plain pytest.
"""
