"""pytorch-grad-cam's ablation layers, accepted for compatibility.

camlang ablates a channel in the layer's `[C, H, W]` view and maps the edited activations back
through the layer's layout (tokens, channels last or a reshape_transform), so one mechanism
serves every model: these classes only mark which kind a script asked for. camlang sets an ablated
channel to zero, as Ablation-CAM defines it; pytorch-grad-cam also does so after a ReLU, but
elsewhere it writes `min - 1e7`, so maps differ on layers whose activations can be negative.
"""

from __future__ import annotations


class AblationLayer:
    """Ablate convolutional channels (the default)."""


class AblationLayerVit(AblationLayer):
    """Ablate token channels (ViT); camlang handles this through the layer's layout."""
