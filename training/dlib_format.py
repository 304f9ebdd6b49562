"""Reading a network that dlib serialised (`serialize(net, out)` in dlib's C++ `dnn` module).

Written from dlib's description of its formats (dlib/serialize.h, dlib/float_details.h and the
`serialize` functions of its dnn layers); nothing here runs or links dlib. What a network file holds:

- integers: a control byte (high bit: negative; low four bits: how many bytes follow), then the
  absolute value in that many little-endian bytes;
- floating-point scalars: a mantissa and an exponent, each an integer as above (value = mantissa
  * 2**exponent);
- strings: their length as an integer, then the bytes; booleans: the character '1' or '0';
- tensors (version 2): the version, four dimensions (samples, channels, rows, columns), then that
  many little-endian IEEE float32 values, row-major; an alias tensor is only its version and four
  dimensions (a view into its layer's parameter tensor);
- the network: each layer wraps the network below it. A wrapper writes its version, then the
  network below it, then (computational layers only) its own details and its training state, so
  the file holds every wrapper's version from the outside in, then the layers' details from the
  input layer outwards.

Only the layer kinds a network uses need a reader below (`LAYER_READERS`); any other name fails
with the offset where it was met.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class DlibFormatError(ValueError):
    """The bytes are not the dlib network this reader was asked to read."""


@dataclass
class DlibLayer:
    """One layer's details as the file holds them: its serialised name, scalar settings, tensors."""

    name: str
    settings: dict = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


class DlibStream:
    """A cursor over the bytes of a dlib file, reading dlib's primitive encodings."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def _take(self, count: int, what: str) -> bytes:
        if self.offset + count > len(self.data):
            raise DlibFormatError(f"file ends inside {what} at byte {self.offset}")
        chunk = self.data[self.offset:self.offset + count]
        self.offset += count
        return chunk

    def peek(self) -> int:
        if self.offset >= len(self.data):
            raise DlibFormatError(f"file ends at byte {self.offset}")
        return self.data[self.offset]

    def integer(self) -> int:
        control = self._take(1, "an integer")[0]
        size = control & 0x0F
        if size > 8:
            raise DlibFormatError(f"not an integer at byte {self.offset - 1} (control byte {control:#04x})")
        value = int.from_bytes(self._take(size, "an integer"), "little")
        return -value if control & 0x80 else value

    def real(self) -> float:
        mantissa, exponent = self.integer(), self.integer()
        if exponent >= 32000:  # dlib's codes for inf, -inf and nan
            return {32000: float("inf"), 32001: float("-inf")}.get(exponent, float("nan"))
        return float(np.ldexp(float(mantissa), exponent))

    def string(self) -> str:
        length = self.integer()
        if not 0 <= length < 1 << 16:
            raise DlibFormatError(f"not a string at byte {self.offset} (length {length})")
        return self._take(length, "a string").decode("ascii", errors="replace")

    def boolean(self) -> bool:
        char = self._take(1, "a boolean")
        if char not in (b"0", b"1"):
            raise DlibFormatError(f"not a boolean at byte {self.offset - 1} ({char!r})")
        return char == b"1"

    def _dimensions(self, what: str) -> tuple[int, int, int, int]:
        start = self.offset
        version = self.integer()
        dims = tuple(self.integer() for _ in range(4))
        expected = 2 if what == "tensor" else 1
        if version != expected or min(dims) < 0:
            raise DlibFormatError(f"not a version-{expected} {what} at byte {start} (version {version}, dims {dims})")
        return dims  # type: ignore[return-value]

    def tensor(self) -> np.ndarray:
        """A resizable_tensor: samples x channels x rows x columns float32."""
        dims = self._dimensions("tensor")
        count = int(np.prod(dims))
        values = np.frombuffer(self._take(4 * count, "tensor data"), dtype="<f4", count=count)
        return values.astype(np.float32).reshape(dims)

    def alias(self) -> tuple[int, int, int, int]:
        """An alias_tensor: only the shape of a view into a parameter tensor."""
        return self._dimensions("alias tensor")

    def expect(self, name: str) -> None:
        start = self.offset
        found = self.string()
        if found != name:
            raise DlibFormatError(f"expected {name!r} at byte {start}, found {found!r}")


def _input_rgb_image_sized(stream: DlibStream) -> DlibLayer:
    mean = [stream.real() for _ in range(3)]
    rows, columns = stream.integer(), stream.integer()
    return DlibLayer("input_rgb_image_sized", {"mean_rgb": mean, "rows": rows, "columns": columns})


def _con(stream: DlibStream, name: str) -> DlibLayer:
    params = stream.tensor()
    filters, rows, columns = stream.integer(), stream.integer(), stream.integer()
    stride_y, stride_x, padding_y, padding_x = (stream.integer() for _ in range(4))
    kernel_shape, bias_shape = stream.alias(), stream.alias()
    for _ in range(4):  # learning-rate and weight-decay multipliers: training settings only
        stream.real()
    use_bias = stream.boolean() if name == "con_5" else True
    kernel_size = int(np.prod(kernel_shape))
    flat = params.reshape(-1)
    if kernel_shape[0] != filters or kernel_shape[2:] != (rows, columns) or len(flat) != kernel_size + use_bias * filters:
        raise DlibFormatError(f"{name}: {len(flat)} parameters do not fit filters {kernel_shape} and bias {bias_shape}")
    tensors = {"kernel": flat[:kernel_size].reshape(kernel_shape)}  # filters x channels x rows x columns
    if use_bias:
        tensors["bias"] = flat[kernel_size:]
    return DlibLayer(name, {"filters": filters, "size": (rows, columns), "stride": (stride_y, stride_x),
                            "padding": (padding_y, padding_x)}, tensors)


def _affine(stream: DlibStream) -> DlibLayer:
    params = stream.tensor().reshape(-1)
    gamma_shape, beta_shape = stream.alias(), stream.alias()
    # Newer writers add the mode (0: per channel, 1: per element); a boolean of the wrapper follows otherwise.
    mode = stream.integer() if stream.peek() not in b"01" else 0
    size = int(np.prod(gamma_shape))
    if gamma_shape != beta_shape or len(params) != 2 * size:
        raise DlibFormatError(f"affine_: {len(params)} parameters do not fit gamma {gamma_shape} and beta {beta_shape}")
    return DlibLayer("affine_", {"mode": mode, "shape": gamma_shape}, {"gamma": params[:size], "beta": params[size:]})


def _pool(stream: DlibStream, name: str) -> DlibLayer:
    rows, columns, stride_y, stride_x, padding_y, padding_x = (stream.integer() for _ in range(6))
    return DlibLayer(name, {"size": (rows, columns), "stride": (stride_y, stride_x), "padding": (padding_y, padding_x)})


def _fc(stream: DlibStream) -> DlibLayer:
    outputs, inputs = stream.integer(), stream.integer()
    params = stream.tensor().reshape(-1)
    weights_shape = stream.alias()
    stream.alias()  # the bias's shape, implied by the outputs
    has_bias = stream.integer() == 0  # dlib's FC_HAS_BIAS is 0, FC_NO_BIAS 1
    for _ in range(4):
        stream.real()
    if weights_shape[:2] != (inputs, outputs) or len(params) != inputs * outputs + has_bias * outputs:
        raise DlibFormatError(f"fc_2: {len(params)} parameters do not fit {inputs} inputs x {outputs} outputs")
    tensors = {"kernel": params[:inputs * outputs].reshape(inputs, outputs)}  # input x output: y = x W
    if has_bias:
        tensors["bias"] = params[inputs * outputs:]
    return DlibLayer("fc_2", {"outputs": outputs, "inputs": inputs}, tensors)


def _loss_metric(stream: DlibStream) -> DlibLayer:
    return DlibLayer("loss_metric_2", {"margin": stream.real(), "distance_threshold": stream.real()})


LAYER_READERS: dict[str, Callable[[DlibStream], DlibLayer]] = {
    "input_rgb_image_sized": _input_rgb_image_sized,
    "con_4": lambda stream: _con(stream, "con_4"),
    "con_5": lambda stream: _con(stream, "con_5"),
    "affine_": _affine,
    "relu_": lambda stream: DlibLayer("relu_"),
    "add_prev_": lambda stream: DlibLayer("add_prev_"),
    "max_pool_2": lambda stream: _pool(stream, "max_pool_2"),
    "avg_pool_2": lambda stream: _pool(stream, "avg_pool_2"),
    "fc_2": _fc,
    "loss_metric_2": _loss_metric,
}


def read_layer(stream: DlibStream) -> DlibLayer:
    start = stream.offset
    name = stream.string()
    reader = LAYER_READERS.get(name)
    if reader is None:
        raise DlibFormatError(f"unknown dlib layer {name!r} at byte {start}")
    return reader(stream)


def _skip_training_state(stream: DlibStream, version: int, input_wrapper: bool) -> None:
    """What a computational wrapper writes after its details: flags and tensors of a training step
    (empty in a saved model, read and dropped)."""
    for _ in range(3):
        stream.boolean()
    stream.tensor()  # gradient
    stream.tensor()  # cached output
    if input_wrapper:
        stream.tensor()  # gradient of the input
        if version >= 3:
            stream.integer()  # sample expansion factor
    elif version >= 2:
        stream.tensor()  # parameter gradient


def read_network(path: str | Path, wrappers: list[str]) -> tuple[DlibLayer, list[DlibLayer]]:
    """(loss layer, layers from the input outwards) of a dlib network with a loss layer on top.

    `wrappers` names every layer wrapper of the network from the input outwards: "layer" for a
    computational layer (which has details), "tag" and "skip" for dlib's tag and skip layers
    (which have none). Only the computational layers appear in the result, input layer first.
    """
    stream = DlibStream(Path(path).read_bytes())
    if stream.integer() != 1:
        raise DlibFormatError(f"{path}: not a dlib network with a loss layer (version at byte 0)")
    loss = read_layer(stream)
    versions = [stream.integer() for _ in wrappers][::-1]  # written from the outside in
    for kind, version in zip(wrappers, versions):
        allowed = {"layer": (1, 2, 3), "tag": (1,), "skip": (1,)}[kind]
        if version not in allowed:
            raise DlibFormatError(f"{path}: a {kind} wrapper of version {version}; the file is not this network")
    layers = [read_layer(stream)]  # the input layer, inside the innermost wrapper
    first = True
    for kind, version in zip(wrappers, versions):
        if kind != "layer":
            continue
        layers.append(read_layer(stream))
        _skip_training_state(stream, version, input_wrapper=first)
        first = False
    if stream.offset != len(stream.data):
        raise DlibFormatError(f"{path}: {len(stream.data) - stream.offset} bytes left after the network")
    return loss, layers
