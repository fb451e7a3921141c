"""What an artifact outputs: classifier logits or probabilities, or backbone embeddings.

``export_module`` wraps the checkpoint's model so that the exported graph computes exactly the
chosen output; validation compares the artifact with this same PyTorch module.
"""

from __future__ import annotations

import torch

from edgessl.errors import CheckpointError, unknown_choice

# output -> (task, needs a classifier head)
OUTPUTS = {
    "logits": ("classify", True),
    "probabilities": ("classify", True),
    "embedding": ("embed", False),
    "embedding-l2": ("embed", False),
}


class Probabilities(torch.nn.Module):
    """A classifier whose output is softmax probabilities [N, C] instead of logits."""

    def __init__(self, classifier: torch.nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.classifier(x), dim=1)


class Embedding(torch.nn.Module):
    """A backbone's pooled features [N, D], optionally L2-normalised (for cosine kNN)."""

    def __init__(self, backbone: torch.nn.Module, l2: bool) -> None:
        super().__init__()
        self.backbone = backbone
        self.l2 = l2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)
        return torch.nn.functional.normalize(features, dim=1) if self.l2 else features


def default_output(kind: str) -> str:
    """Logits for a classifier checkpoint, embeddings for a backbone checkpoint."""
    return "logits" if kind == "classifier" else "embedding"


def export_module(model: torch.nn.Module, kind: str, output: str, where: str):
    """The module to export for ``output``, in eval mode, and its task ("classify"/"embed").

    Raises:
        ConfigError: unknown output.
        CheckpointError: a classifier output asked of a backbone checkpoint.
    """
    if output not in OUTPUTS:
        raise unknown_choice("--output", output, OUTPUTS)
    task, needs_head = OUTPUTS[output]
    if needs_head and kind != "classifier":
        raise CheckpointError(f"'{where}' is a {kind} checkpoint without a classifier head; "
                              "export it with --output embedding, or run `edgessl finetune` "
                              "on it first and export the result")
    if output == "logits":
        module = model
    elif output == "probabilities":
        module = Probabilities(model)
    else:
        backbone = model.backbone if kind == "classifier" else model
        module = Embedding(backbone, l2=output == "embedding-l2")
    return module.eval(), task
