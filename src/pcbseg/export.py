"""Export a trained model to ONNX (dynamic height and width) and check it against PyTorch.

The exported graph takes what :class:`~pcbseg.models.module.SegmentationModule` takes: float32
RGB in [0, 1], shape (N, 3, H, W) with H and W multiples of 32, and returns logits (N, C, H, W).
The encoder's normalisation is inside the graph (from the checkpoint), and the file's metadata
records the input convention, the class names and colours, so nothing has to be re-typed.

Example:
    >>> import tempfile, pathlib, torch
    >>> from pcbseg.models.module import SegmentationModule
    >>> m = SegmentationModule(weights=None, num_classes=3)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.onnx"
    >>> report = export_onnx(m, path)
    >>> report["max_abs_diff"] < 1e-3, report["input_shape"]
    (True, [1, 3, 160, 224])
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pcbseg.jsonfile import write_json

INPUT_CONVENTION = "rgb01"  # metadata "pcbseg_input": float32 RGB in [0, 1], normalisation inside the graph


class OnnxForward:
    """Call an exported model like the PyTorch one: RGB in [0, 1] (N,3,H,W) tensor in, logits out."""

    def __init__(self, path: str | Path):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ImportError("predict.backend=onnx needs onnxruntime: pip install onnxruntime") from None
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no ONNX model (make one with pcbseg-export ckpt_path=...)")
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("pcbseg_input") != INPUT_CONVENTION:
            raise ValueError(f"{path}: exported by an older pcbseg (its input is normalised outside the graph); "
                             "export it again with pcbseg-export ckpt_path=...")
        self.metadata = meta
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        (out,) = self.session.run(None, {self.input: x.detach().cpu().float().numpy()})
        return torch.from_numpy(out)


def _test_image(height: int, width: int) -> torch.Tensor:
    """A synthetic board as the model takes it (RGB in [0, 1]): a real-looking input rather than noise."""
    from pcbseg.data.synth import render_board

    image, _ = render_board(seed=0, size=max(height, width))
    return torch.from_numpy(image[:height, :width]).permute(2, 0, 1)[None].float() / 255


def export_onnx(module: nn.Module, path: str | Path, opset: int = 17, check_shape: tuple[int, int] = (160, 224)) -> dict:
    """Write ``path`` and return the parity report (also written to ``<path>.json``).

    The check runs a test image of another size than the one traced, so it also proves the
    height/width axes are dynamic.
    """
    path = Path(path)
    parts = [module.normalize, module.model] if hasattr(module, "normalize") else [module]
    net = copy.deepcopy(nn.Sequential(*parts)).eval()
    net = net.to(memory_format=torch.contiguous_format).float().cpu()
    dummy = torch.randn(1, 3, 256, 256)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(net, (dummy,), str(path), input_names=["image"], output_names=["logits"], opset_version=opset,
                          dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                                        "logits": {0: "batch", 2: "height", 3: "width"}}, dynamo=False)
    _add_metadata(path, module)
    report: dict = {"onnx": str(path), "opset": opset, "input_shape": [1, 3, *check_shape]}
    try:
        runner = OnnxForward(path)
    except ImportError as e:
        report["parity"] = f"not checked: {e}"
        return report
    x = _test_image(*check_shape)
    with torch.no_grad():
        ref = net(x)
    got = runner(x)
    report["max_abs_diff"] = float((ref - got).abs().max())
    report["argmax_agreement"] = float((ref.argmax(1) == got.argmax(1)).float().mean())
    write_json(path.with_suffix(path.suffix + ".json"), report)
    return report


def _add_metadata(path: Path, module: nn.Module) -> None:
    import onnx

    model = onnx.load(str(path))
    hp = getattr(module, "hparams", {})
    meta = {"pcbseg_input": INPUT_CONVENTION,
            "pcbseg_input_doc": "float32 RGB in [0, 1], (N, 3, H, W), H and W multiples of 32; output: logits (N, C, H, W)",
            "pcbseg_classes": json.dumps(list(hp.get("class_names", []))),
            "pcbseg_colours": json.dumps(hp.get("class_colours")),
            "pcbseg_mean": json.dumps(hp.get("mean")), "pcbseg_std": json.dumps(hp.get("std"))}
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def parity_ok(report: dict, tolerance: float = 1e-3) -> bool:
    return "max_abs_diff" in report and np.isfinite(report["max_abs_diff"]) and report["max_abs_diff"] <= tolerance
