"""The editor window (Qt lives only in this package).

``main`` starts the application; ``window`` is the main window, wired to a Qt-free
:class:`~faceeditor.edit.document.Document`; ``workers`` hold the one background renderer and the
fit jobs; ``engine`` is the only door to fitting/rendering (torch, mediapipe); ``canvas``,
``viewport`` (+ ``scene``), ``panels``, ``widgets``, ``actions``, ``fileops``, ``icons``, ``theme``
are the views; ``driver`` drives the window from code (tests, ``faceeditor bench gui``).
"""
