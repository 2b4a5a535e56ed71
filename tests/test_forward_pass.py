"""The worked three-layer forward pass of note 004 (docs/concepts.md §3), through our MLP."""

import torch

from dlbasics.activations import ActConfig
from dlbasics.models.mlp import MLP

# Weights in the notes' convention: A = x @ W + b.
W1 = [[0.1, 0.3, 0.5], [0.2, 0.4, 0.6]]
B1 = [0.1, 0.2, 0.3]
W2 = [[0.1, 0.4], [0.2, 0.5], [0.3, 0.6]]
B2 = [0.1, 0.2]
W3 = [[0.1, 0.3], [0.2, 0.4]]
B3 = [0.1, 0.2]


def test_mlp_reproduces_the_notes_forward_pass():
    model = MLP(2, [3, 2], 2, ActConfig(name="sigmoid"), dropout=0.0).double()
    linears = [m for m in model.net if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for layer, w, b in zip(linears, (W1, W2, W3), (B1, B2, B3), strict=True):
            layer.weight.copy_(torch.tensor(w, dtype=torch.float64).T)  # torch stores W^T
            layer.bias.copy_(torch.tensor(b, dtype=torch.float64))

    x = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    outputs = []
    for module in model.net:  # Linear, Sigmoid, Linear, Sigmoid, Linear
        x = module(x)
        outputs.append(x[0])
    a1, z1, a2, z2, y = outputs

    def close(actual, expected):
        return torch.allclose(actual, torch.tensor(expected, dtype=torch.float64), atol=1e-6)

    assert close(a1, [0.3, 0.7, 1.1])
    assert close(z1, [0.57444252, 0.66818777, 0.75026011])
    assert close(a2, [0.51615984, 1.21402696])
    assert close(z2, [0.62624937, 0.7710107])
    assert close(y, [0.31682708, 0.69627909])
    # The same through forward(): identity output layer, so the scores are y.
    assert close(model(torch.tensor([[1.0, 0.5]], dtype=torch.float64))[0], y.tolist())
