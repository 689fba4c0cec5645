"""Drop-in interfaces of other CAM libraries, built on camlang's own engine.

`camlang.compat.grad_cam` mirrors pytorch-grad-cam (`grad-cam` on PyPI): change
`from pytorch_grad_cam import GradCAM` to `from camlang.compat.grad_cam import GradCAM` and the
rest of a script stays as it is.
"""
