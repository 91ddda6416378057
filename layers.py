"""The networks' building blocks: a stack of fully connected layers with their activation."""
import torch
from torch import nn


class Tanh(nn.Module):
    """tanh(x), computed as 2 sigmoid(2x) - 1: the same function (to float rounding), and on the CPU torch's sigmoid
    is vectorised where its tanh is not, about 4 times faster on a (2048, 200) tensor. The gradient is tanh's own."""

    def forward(self, x):
        return _SigmoidTanh.apply(x)


class _SigmoidTanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = torch.sigmoid(x * 2).mul_(2).sub_(1)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)  # grad * (1 - y^2)


ACTIVATIONS = {"relu": nn.ReLU, "tanh": Tanh}


def hidden_stack(widths, activation):
    """A Linear layer from each width to the next, each followed by the activation."""
    return [module for inputs, outputs in zip(widths, widths[1:])
            for module in (nn.Linear(inputs, outputs), ACTIVATIONS[activation]())]
