"""The layers of weight_only_int8 / weight_only_int4: integer weights in the file, float activations.

Each layer is scripted (`torch.jit.script`) as it is built, so when the whole model is traced to TorchScript the
trace calls these layers' own code, branches included, instead of freezing the path one input took: the saved model
runs at any batch size and sequence length.

- `Int8Linear`: int8 weights [out, in], one float32 scale per output channel (symmetric, zero is exactly 0).
- `Int4Linear`: int4 weights per group of `group_size` inputs, asymmetric (a bfloat16 scale and zero per group),
  stored two to a byte.
- `Int8Embedding`: an int8 table with one float32 scale per row; the rows asked for are dequantized. A token
  embedding tied to the output head (Llama, SmolLM, GPT-2) is the same int8 matrix and scales as the head's
  `Int8Linear`: both modules hold the same tensors, which TorchScript stores once.

Compute. aten's CPU weight-only kernels (`_weight_int8pack_mm`, `_weight_int4pack_mm_for_cpu`) take bfloat16
activations (their float32 paths are reference loops, 10-100x slower) and are fast for a few rows only: they are
used up to `SMALL_ROWS` rows (one token of a few sequences). Longer inputs (a prompt, a perplexity block)
dequantize the weights to bfloat16 and run one bfloat16 matrix multiply, which beat the kernels from about 16
(int8) / 64 (int4) rows on a 2-core AVX512-BF16 x86 (measured on 576x1536 and 49152x576 layers). Either way the
layer's input is rounded to bfloat16; its output comes back float32. On that machine int8 ran faster than float32 at
every length, int4 slower for inputs of tens to hundreds of rows (unpacking 4-bit values costs more than the bytes it
saves there; bench/RESULTS.md, "Language models").

Portability. The int4 kernel's packed layout depends on the CPU's vector width (AVX512, AVX2 or none), so a packed
matrix written on one machine would compute garbage on another. The file keeps the portable form (two values a
byte, low nibble first) and `__setstate__` packs it for the CPU that loads it. The int8 kernel needs the input
width to be a multiple of 16 (it crashes the process otherwise); other layers always take the dequantizing path.
"""
import torch
import torch.nn.functional as F
from torch import nn

SMALL_ROWS = {8: 16, 4: 64}  # bits -> most rows that go through aten's weight-only kernel
INT8_KERNEL_IN_MULTIPLE = 16  # _weight_int8pack_mm reads the input width in blocks of 16
INT4_OUT_MULTIPLE = 16  # _convert_weight_to_int4pack_for_cpu refuses other output widths
INT8_MAX = 127
INT4_REFINEMENTS = 4  # least-squares rounds that fit each int4 group's grid to its weights


def int8_rows(weight: torch.Tensor, per_channel: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 values, float32 scale per row): each row scaled so its largest magnitude is 127 (one scale for the
    whole matrix when not `per_channel`, repeated per row so every layer runs the same code)."""
    values = weight.detach().float()
    bound = values.abs().amax(dim=1) if per_channel else values.abs().amax().expand(values.shape[0])
    scale = (bound / INT8_MAX).clamp(min=1e-12)
    quantized = torch.round(values / scale[:, None]).clamp(-INT8_MAX, INT8_MAX).to(torch.int8)
    return quantized.contiguous(), scale.contiguous()


def int4_groups(weight: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 [out, in/2] two 4-bit values a byte, low nibble first; bfloat16 [in/group, out, 2] scale and zero).

    The tinygemm convention of aten's kernel: w = (q - 8) * scale + zero, q in 0..15, per group of `group_size`
    inputs. The grid starts at the group's min and max, then `INT4_REFINEMENTS` rounds of least squares move it:
    with the values' levels fixed, the scale and offset that fit the weights best are a line fit, and the levels are
    then rounded again (each round can only lower the squared error; on SmolLM2-135M it cut the weights' error from
    7.9% to 7.0%). The values are rounded against the bfloat16 scale and zero the kernel will use, not the float32
    ones, so the rounding of the scales is not added on top.
    """
    rows, width = weight.shape
    groups = weight.detach().float().reshape(rows, width // group_size, group_size)
    low, high = groups.amin(dim=-1, keepdim=True), groups.amax(dim=-1, keepdim=True)
    step, offset = ((high - low) / 15).clamp(min=1e-12), low
    for _ in range(INT4_REFINEMENTS):
        step, offset = _line_fit(groups, torch.round((groups - offset) / step).clamp(0, 15), step)
    scale = step.to(torch.bfloat16)
    zero = (offset + 8 * scale.float()).to(torch.bfloat16)
    minimum = zero.float() - 8 * scale.float()
    values = torch.round((groups - minimum) / scale.float()).clamp(0, 15).to(torch.uint8).reshape(rows, width)
    nibbles = values[:, 0::2] | (values[:, 1::2] << 4)
    scales_and_zeros = torch.cat([scale, zero], dim=-1).transpose(0, 1).contiguous()  # [groups, rows, 2]
    return nibbles.contiguous(), scales_and_zeros


def _line_fit(groups: torch.Tensor, levels: torch.Tensor, step: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(step, offset) minimising the squared error of levels * step + offset against each group's weights; a group
    whose levels are all equal keeps its step."""
    level_mean, weight_mean = levels.mean(dim=-1, keepdim=True), groups.mean(dim=-1, keepdim=True)
    variance = ((levels - level_mean) ** 2).mean(dim=-1, keepdim=True)
    covariance = ((levels - level_mean) * (groups - weight_mean)).mean(dim=-1, keepdim=True)
    fitted = torch.where(variance > 0, covariance / variance.clamp(min=1e-12), step).clamp(min=1e-12)
    return fitted, weight_mean - fitted * level_mean


def int4_fits(out_features: int, in_features: int, group_size: int) -> bool:
    """Whether aten's int4 kernel takes a layer of this shape (others are stored int8)."""
    return out_features % INT4_OUT_MULTIPLE == 0 and in_features % group_size == 0


class Int8Linear(nn.Module):
    def __init__(self, weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.register_buffer("weight", weight)  # int8 [out, in]
        self.register_buffer("scale", scale)  # float32 [out]
        self.register_buffer("bias", bias.detach().float() if bias is not None else torch.empty(0))
        self.in_features, self.out_features = int(weight.shape[1]), int(weight.shape[0])
        self.small_rows = SMALL_ROWS[8]
        self.kernel = weight.shape[1] % INT8_KERNEL_IN_MULTIPLE == 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features).to(torch.bfloat16).contiguous()
        if self.kernel and flat.shape[0] <= self.small_rows and flat.device.type == "cpu":
            ones = torch.ones(self.out_features, dtype=torch.bfloat16, device=flat.device)
            out = torch.ops.aten._weight_int8pack_mm(flat, self.weight, ones).float() * self.scale
        else:
            out = F.linear(flat, self.weight.to(torch.bfloat16)).float() * self.scale
        if self.bias.numel() > 0:
            out = out + self.bias
        shape: list[int] = list(x.shape[:-1]) + [self.out_features]
        return out.reshape(shape)


class Int4Linear(nn.Module):
    def __init__(self, nibbles: torch.Tensor, scales_and_zeros: torch.Tensor, bias: torch.Tensor | None,
                 group_size: int) -> None:
        super().__init__()
        self.register_buffer("nibbles", nibbles)  # uint8 [out, in/2]: the portable form, what the file holds
        self.register_buffer("scales_and_zeros", scales_and_zeros)  # bfloat16 [in/group, out, 2]
        self.register_buffer("bias", bias.detach().float() if bias is not None else torch.empty(0))
        self.group_size = group_size
        self.in_features, self.out_features = int(nibbles.shape[1]) * 2, int(nibbles.shape[0])
        self.small_rows = SMALL_ROWS[4]
        # The kernel's layout for this machine's CPU: rebuilt on loading (__setstate__), never saved.
        self.register_buffer("packed", self._pack(nibbles))

    def _unpacked(self, nibbles: torch.Tensor) -> torch.Tensor:
        return torch.stack([nibbles & 15, nibbles >> 4], dim=-1).reshape(nibbles.shape[0], -1)

    def _pack(self, nibbles: torch.Tensor) -> torch.Tensor:
        if nibbles.device.type != "cpu":
            return torch.empty(0, dtype=torch.uint8, device=nibbles.device)  # other devices dequantize
        return torch.ops.aten._convert_weight_to_int4pack_for_cpu(self._unpacked(nibbles).to(torch.int32), 1)

    def _dequantized(self) -> torch.Tensor:
        groups = self._unpacked(self.nibbles).reshape(self.out_features, -1, self.group_size)
        scale = self.scales_and_zeros[:, :, 0].t().unsqueeze(-1)
        zero = self.scales_and_zeros[:, :, 1].t().unsqueeze(-1)
        return ((groups.to(torch.bfloat16) - 8) * scale + zero).reshape(self.out_features, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features).to(torch.bfloat16).contiguous()
        if flat.shape[0] <= self.small_rows and self.packed.numel() > 0 and flat.device.type == "cpu":
            out = torch.ops.aten._weight_int4pack_mm_for_cpu(flat, self.packed, self.group_size,
                                                             self.scales_and_zeros).float()
        else:
            out = F.linear(flat, self._dequantized()).float()
        if self.bias.numel() > 0:
            out = out + self.bias
        shape: list[int] = list(x.shape[:-1]) + [self.out_features]
        return out.reshape(shape)

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, int, int, bool]:
        return (self.nibbles, self.scales_and_zeros, self.bias, self.group_size, self.small_rows,
                self.out_features, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, int, int, bool]) -> None:
        self.nibbles, self.scales_and_zeros, self.bias = state[0], state[1], state[2]
        self.group_size, self.small_rows, self.out_features, self.training = state[3], state[4], state[5], state[6]
        self.in_features = int(state[0].shape[1]) * 2
        self.packed = self._pack(state[0])


class Int8Embedding(nn.Module):
    def __init__(self, weight: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("weight", weight)  # int8 [rows, dim]
        self.register_buffer("scale", scale)  # float32 [rows]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.weight[ids].float() * self.scale[ids].unsqueeze(-1)


def scripted(module: nn.Module) -> torch.jit.ScriptModule:
    return torch.jit.script(module.eval())
