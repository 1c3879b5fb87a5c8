"""Deterministic weights and inputs for backbone tests: BatchNorm statistics that matter, and closed-form
weights and clips that give the same numbers on any machine (for checks against reference values)."""

import math

import torch


def randomised(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every BatchNorm non-trivial statistics and affine terms, so a lost tensor changes outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model.eval()


def closed_form_init(model: torch.nn.Module) -> torch.nn.Module:
    """Set every tensor from a formula of its name's rank and position (same values on any machine)."""
    state = model.state_dict()
    with torch.no_grad():
        for i, name in enumerate(sorted(state)):
            t = state[name]
            if not t.is_floating_point():
                continue
            wave = torch.sin(torch.arange(t.numel(), dtype=torch.float64) * 0.7 + i).reshape(t.shape)
            if name.endswith("running_var"):
                t.copy_(1.0 + 0.5 * wave.abs())
            elif name.endswith(("running_mean", "bias")):
                t.copy_(0.1 * wave)
            elif t.dim() == 1:  # BatchNorm weight
                t.copy_(1.0 + 0.2 * wave)
            else:
                t.copy_(wave * (3.0 / t[0].numel()) ** 0.5)
    return model.eval()


def closed_form_clip(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.cos(torch.arange(math.prod(shape), dtype=torch.float64) * 0.37).reshape(shape)


def seeded_state(model: torch.nn.Module, seed: int = 0, gain: float = 1.0) -> dict[str, torch.Tensor]:
    """Deterministic weights for `model` from each tensor's name and shape alone, by numpy's seeded generator
    (PCG64): the same numbers in any process, any torch, and in a public definition whose names map onto ours
    (benchmarks/raft_reference.py fills torchvision's and princeton-vl's RAFT with them).

    Weights of 2+ dimensions: normal with variance gain / fan-in; biases and running means: normal * 0.1;
    other vectors (norm scales): 1 + normal * 0.1; running variances: 1 + uniform * 0.25. Integer buffers
    (num_batches_tracked) keep their values."""
    import zlib

    import numpy as np

    out = {}
    for name, t in model.state_dict().items():
        if not t.is_floating_point():
            out[name] = t.clone()
            continue
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        shape = tuple(t.shape)
        if name.endswith("running_var"):
            v = 1.0 + 0.25 * rng.random(shape)
        elif name.endswith(("running_mean", "bias")):
            v = 0.1 * rng.standard_normal(shape)
        elif t.dim() < 2:
            v = 1.0 + 0.1 * rng.standard_normal(shape)
        else:
            v = rng.standard_normal(shape) * math.sqrt(gain / math.prod(shape[1:]))
        out[name] = torch.from_numpy(np.asarray(v, dtype=np.float32))
    return out
