"""The speed tricks, out of the reading path, each equal to its plain form (tests/test_model.py) and timed against it
by benchmarks/speed.py (docs/performance.md has the figures)."""
import torch


def binary_cross_entropy(logits, x):
    """Summed binary cross-entropy in nats over the last dim: (..., 784) -> (...), x broadcast against logits; to
    float rounding F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1), faster on the CPU."""
    return _BinaryCrossEntropy.apply(logits, x)


class _BinaryCrossEntropy(torch.autograd.Function):
    """softplus(l) - x l = |l| / 2 + l (1/2 - x) - log sigmoid(|l|), stable for any l (sigmoid(|l|) lies in [1/2, 1]),
    with the gradient sigmoid(l) - x. torch's softplus, log1p and logsigmoid, which binary_cross_entropy_with_logits
    is built on, are 5 to 10 times slower on the CPU than its sigmoid and log."""

    @staticmethod
    def forward(ctx, logits, x):
        ctx.save_for_backward(logits, x)
        magnitude = logits.abs()
        linear = magnitude.sum(-1).mul_(0.5).add_(torch.linalg.vecdot(logits, 0.5 - x))  # (...)
        # The product of 98 sigmoids of |l| is at least 2^-98, far above float32's smallest normal number, so
        # one log per 98 pixels sums the same logs (to float rounding) for a hundredth of the log calls.
        groups = magnitude.sigmoid_().unflatten(-1, (-1, 98)).prod(-1)  # (..., 8)
        return linear.sub_(groups.log_().sum(-1))

    @staticmethod
    def backward(ctx, grad):
        logits, x = ctx.saved_tensors
        return torch.sigmoid(logits).sub_(x).mul_(grad.unsqueeze(-1)), None


def flush_denormals():
    """Treat floats below 1.2e-38 (denormals) as zero in this process's CPU arithmetic, which x86 CPUs do many times
    slower: a Bernoulli decoder's gradient, sigmoid(l) - x, is denormal wherever a pixel is predicted with near
    certainty. No value that moves a weight is that small. Called before the script's first tensor operation."""
    torch.set_flush_denormal(True)
