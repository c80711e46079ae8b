"""Training the engagement model: frozen EfficientNet-Lite0, a head, whole recordings held out.

1. Whole recordings are held out for the test (``test_fraction`` of each class's images) and,
   inside the rest, for validation (early stopping). No frame of a test recording is trained on.
2. The head (dropout and a linear layer on the pooled 1,280 features) trains on the cached
   embeddings of the training frames and ``augment_copies`` augmented variants of each, with
   class weights inversely proportional to class frequency, and stops when the validation loss
   has not improved for ``patience`` epochs (the best epoch's weights are kept).
3. Optionally (``fine_tune_blocks`` > 0) the last blocks of the backbone are then trained too,
   end to end on augmented images, at a lower learning rate, with the same early stopping.
4. The metrics are computed on the held-out recordings only.

Pure apart from reading images and the embedding cache; registering is :mod:`registry`'s job.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from retain.evaluation.metrics import classification_metrics
from retain.vision.dataset import GroupSplit, ImageFolder, group_split
from retain.vision.embeddings import EmbeddingCache, compute

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainOptions:
    """How the engagement model is trained."""

    test_fraction: float = 0.2
    validation_fraction: float = 0.2
    augment_copies: int = 2
    epochs: int = 300
    patience: int = 25
    learning_rate: float = 3e-3
    weight_decay: float = 1e-3
    dropout: float = 0.2
    fine_tune_blocks: int = 0
    fine_tune_epochs: int = 3
    seed: int = 42

    def to_params(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass
class TrainedEngagementModel:
    """The trained network (torch, for export), its split and its held-out metrics."""

    network: Any
    classes: tuple[str, str]
    split: GroupSplit
    metrics: dict[str, float]
    confusion: list[list[int]]
    subclass_error: dict[str, float]
    test_probability: np.ndarray
    epochs_run: int
    seconds: float
    options: TrainOptions
    extra: dict[str, Any] = field(default_factory=dict)


def held_out_split(folder: ImageFolder, options: TrainOptions) -> GroupSplit:
    """The test split: whole recordings, seeded, about ``test_fraction`` of each class."""
    return group_split(folder.labels, folder.groups, options.test_fraction, options.seed)


def _class_weights(labels: np.ndarray) -> np.ndarray:
    counts = np.bincount(labels, minlength=2).astype(np.float64)
    return (len(labels) / (2 * np.maximum(counts, 1))).astype(np.float32)


def train_head(
    network: Any,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    options: TrainOptions,
) -> int:
    """Fit ``network.head`` on embeddings with early stopping; returns the epochs run."""
    import torch

    torch.manual_seed(options.seed)
    head, dropout = network.head, network.dropout
    weights = torch.from_numpy(_class_weights(y_train))
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    optimiser = torch.optim.AdamW(
        head.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay
    )
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    xv, yv = torch.from_numpy(x_val), torch.from_numpy(y_val)
    best, best_state, stale, epoch = float("inf"), None, 0, 0
    generator = torch.Generator().manual_seed(options.seed)
    for epoch in range(1, options.epochs + 1):  # noqa: B007 - the count is returned
        head.train()
        dropout.train()
        for rows in torch.randperm(len(xt), generator=generator).split(128):
            optimiser.zero_grad()
            loss_fn(head(dropout(xt[rows])), yt[rows]).backward()
            optimiser.step()
        head.eval()
        dropout.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(head(xv), yv))
        if val_loss < best - 1e-5:
            best, stale = val_loss, 0
            best_state = {k: v.clone() for k, v in head.state_dict().items()}
        else:
            stale += 1
            if stale >= options.patience:
                break
    if best_state is not None:
        head.load_state_dict(best_state)
    return epoch


def fine_tune(
    network: Any,
    folder: ImageFolder,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    options: TrainOptions,
    progress: Progress | None = None,
) -> int:
    """Train the last ``fine_tune_blocks`` blocks, the head conv and the classifier end to end."""
    import torch

    from retain.vision.augment import augment
    from retain.vision.images import normalise, read, square

    torch.manual_seed(options.seed)
    body = network.body
    for parameter in body.parameters():
        parameter.requires_grad = False
    trainable = [*body._blocks[-options.fine_tune_blocks :], body._conv_head, body._bn1]
    for module in trainable:
        for parameter in module.parameters():
            parameter.requires_grad = True
    params = [p for p in network.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=options.learning_rate / 10, weight_decay=options.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.from_numpy(_class_weights(folder.labels[train_rows])))
    rng = np.random.default_rng(options.seed)
    paths = [folder.items[i].path for i in range(len(folder.items))]
    val_x = torch.from_numpy(normalise(np.stack([square(read(str(paths[i]))) for i in val_rows])))
    val_y = torch.from_numpy(folder.labels[val_rows])
    best, best_state, epoch = float("inf"), None, 0
    for epoch in range(1, options.fine_tune_epochs + 1):
        network.train()
        for module in body.modules():  # frozen batch-norm statistics stay as pretrained
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eval()
        for batch in np.array_split(rng.permutation(train_rows), max(1, len(train_rows) // 32)):
            pixels = np.stack([square(augment(read(str(paths[i])), rng)) for i in batch])
            optimiser.zero_grad()
            loss_fn(
                network(torch.from_numpy(normalise(pixels))), torch.from_numpy(folder.labels[batch])
            ).backward()
            optimiser.step()
        network.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(network(val_x), val_y))
        if progress:
            progress(f"fine-tune epoch {epoch}: validation loss {val_loss:.4f}")
        if val_loss < best:
            best, best_state = val_loss, {k: v.clone() for k, v in network.state_dict().items()}
    if best_state is not None:
        network.load_state_dict(best_state)
    for parameter in network.parameters():
        parameter.requires_grad = False
    return epoch


def evaluate(
    labels: np.ndarray, probability: np.ndarray, subclasses: np.ndarray, classes: tuple[str, str]
) -> tuple[dict[str, float], list[list[int]], dict[str, float]]:
    """Held-out metrics, the confusion matrix (rows: truth) and the error rate per sub-class."""
    proba = np.column_stack([1 - probability, probability])
    metrics = classification_metrics(labels, proba, list(classes))
    predicted = (probability >= 0.5).astype(int)
    matrix = [[int(np.sum((labels == t) & (predicted == p))) for p in (0, 1)] for t in (0, 1)]
    errors = {
        str(s): float(np.mean(predicted[subclasses == s] != labels[subclasses == s]))
        for s in np.unique(subclasses)
    }
    return metrics, matrix, errors


def train(
    folder: ImageFolder,
    options: TrainOptions | None = None,
    *,
    cache: EmbeddingCache | None = None,
    progress: Progress | None = None,
) -> TrainedEngagementModel:
    """Train on ``folder`` with whole recordings held out; see the module docstring."""
    import torch

    from retain.vision.backbone import engagement_network, load_backbone

    options = options or TrainOptions()
    started = time.perf_counter()
    torch.manual_seed(options.seed)
    split = held_out_split(folder, options)
    labels, groups = folder.labels, folder.groups
    inner = group_split(
        labels[split.train], groups[split.train], options.validation_fraction, options.seed + 1
    )
    fit_rows, val_rows = split.train[inner.train], split.train[inner.test]
    backbone = load_backbone()
    paths = [item.path for item in folder.items]
    features = compute(
        paths, ("full",), copies=options.augment_copies, cache=cache, backbone=backbone,
        seed=options.seed, progress=progress,
    )  # fmt: skip
    base = features[("full", 0)]
    x_fit = np.concatenate(
        [base[fit_rows]] + [features[("full", c)][fit_rows] for c in range(1, options.augment_copies + 1)]
    )
    y_fit = np.tile(labels[fit_rows], options.augment_copies + 1)
    network = engagement_network(backbone, options.dropout)
    epochs = train_head(network, x_fit, y_fit, base[val_rows], labels[val_rows], options)
    if progress:
        progress(f"head trained: {epochs} epochs on {len(x_fit)} embeddings")
    extra: dict[str, Any] = {}
    if options.fine_tune_blocks > 0:
        extra["fine_tune_epochs_run"] = fine_tune(network, folder, fit_rows, val_rows, options, progress)
        from retain.vision.backbone import embed
        from retain.vision.images import normalise, read, square

        pixels = np.stack([square(read(str(paths[i]))) for i in split.test])
        test_features = embed(network.body, normalise(pixels))
    else:
        test_features = base[split.test]
    network.eval()
    with torch.no_grad():
        logits = network.head(torch.from_numpy(test_features))
        probability = torch.softmax(logits, dim=1)[:, 1].numpy().astype(np.float64)
    subclasses = np.array([f"{folder.items[i].label_name}/{folder.items[i].subclass}" for i in split.test])
    metrics, matrix, errors = evaluate(labels[split.test], probability, subclasses, folder.classes)
    metrics["test_recordings"] = float(len(np.unique(groups[split.test])))
    metrics["train_images"] = float(len(fit_rows))
    return TrainedEngagementModel(
        network=network,
        classes=folder.classes,
        split=split,
        metrics=metrics,
        confusion=matrix,
        subclass_error=errors,
        test_probability=probability,
        epochs_run=epochs,
        seconds=time.perf_counter() - started,
        options=options,
        extra=extra,
    )
