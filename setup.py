"""Package layout for setuptools: the top-level grammars/, stdlib/ and models/ folders ship
inside the wheel as camlang/grammars, camlang/stdlib and camlang/weights."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["camlang", "camlang.*"]) + ["camlang.grammars", "camlang.stdlib", "camlang.weights"],
    package_dir={"camlang.grammars": "grammars", "camlang.stdlib": "stdlib", "camlang.weights": "models"},
    package_data={"camlang.grammars": ["*.lark"], "camlang.stdlib": ["*.cam"], "camlang.weights": ["*.pt", "*.onnx"]},
    include_package_data=False,
)
