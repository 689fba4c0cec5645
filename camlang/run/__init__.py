"""The run layer: `camlang run` on a checked program.

`program` drives a whole run; `state` holds what it has loaded and produced; `cache` keeps
finished results across crashes; `actions` carries out `evaluate` and `check`; `export` writes
standalone modules. It sits on top of `synth`, `smt` and `concepts`.
"""
