"""tusk's ops inside other libraries' models, one module per library.

Each module imports its library lazily (importing ``tusk.integrations.<library>`` does not import
the library), keeps the library's signatures and outputs, and is tested by running the library's
own modules with and without tusk:

- :mod:`tusk.integrations.kornia`: the detection heads of kornia's ALIKED, DISK and XFeat
  (``pip install "tusk[kornia]"``).
"""
