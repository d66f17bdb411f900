"""RobustDeep Studio: the RobustDeep module's panels in a browser (trame-slicer), for machines without
a display such as GPU servers.

``robustdeep studio [WORKSPACE]`` serves it (:mod:`RobustDeepStudio.server`). It needs the optional
extra ``robustdeep[studio]`` (trame-slicer, which brings slicer-core and VTK). The modules that do not
need trame or Slicer (:mod:`.workspace`, :mod:`.jobs`, :mod:`.security`) are tested on their own; the
others run on a real MRML scene. The engine (``RobustDeepLogic``) never imports this package.
"""
