"""The editor window (Qt lives only in this package).

``main`` starts the application (the window shows before torch loads: ``startup`` builds the
editor behind it; ``prefs``, ``glformat``, ``layout``, ``tasks``, ``widgets``, ``canvas`` are
torch-free for that); ``window`` is the main window, wired to a Qt-free
:class:`~faceeditor.edit.document.Document`; ``workers`` hold the one background photo renderer,
``meshworker`` the 3D view's head meshes, ``fitjob`` the fit jobs, ``background`` export writers;
``engine`` is the only door to fitting/rendering (torch, mediapipe); ``rendering`` (adaptive
previews while dragging, full resolution on release), ``fitting``, ``fileops`` and ``tasks``
(progress with Cancel) are the window's controllers; ``canvas``, ``viewport`` (+ ``scene``),
``panels``, ``widgets``, ``actions``, ``preferences``, ``icons``, ``theme`` are the views;
``driver`` drives the window from code (tests, ``faceeditor bench gui``); ``probe`` times the
start and the quit for that benchmark.
"""
