"""The operator application (PyQt6 + pyqtgraph): the only package that imports Qt."""
