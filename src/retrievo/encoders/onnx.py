"""A sentence-transformers model run by ONNX Runtime: the default dense backend.

Why not sentence-transformers' own ``backend="onnx"``: it needs optimum and a hub export step; here the
transformer is exported once with ``torch.onnx.export``, its attention / LayerNorm / GELU subgraphs are
fused by ONNX Runtime's transformer optimizer, and the result is cached on disk (keyed by the model's
files), so later runs load it in a second. Tokenisation (Hugging Face ``tokenizers``), truncation to the
model's ``max_seq_length``, pooling (from ``1_Pooling/config.json``) and L2 normalisation follow the
sentence-transformers model exactly; vectors agree with it to cosine ≥ 0.999 (a test checks this).

Speed comes from fused kernels, both cores in one session, and length bucketing (see
:mod:`retrievo.encoders._bucketed`). This is the float32 backend, used where the CPU lacks native bf16.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from retrievo._optional import require
from retrievo.encoders._bucketed import BucketedEncoder, transformer_dir
from retrievo.encoders._fingerprint import folder_digest
from retrievo.encoders.base import default_threads

__all__ = ["OnnxSentenceEncoder", "export_onnx", "file_key"]


def file_key(root: Path) -> str:
    """The exported graph's cache key: the model folder's content (a retrained model is exported again)."""
    return folder_digest(root).hexdigest()[:20]


def export_onnx(model_dir: Path, out_dir: Path, task: str = "features") -> Path:
    """Export the transformer of ``model_dir`` to ``out_dir/model.onnx`` (fused), atomically; return the path.

    ``task``: ``"features"`` (the last hidden state, for sentence encoders) or ``"classification"`` (the
    logits of a sequence-classification head, with token type ids as an input, for cross-encoders)."""
    torch = require("torch")
    transformers = require("transformers")
    target = out_dir / "model.onnx"
    if target.exists():
        return target
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    try:
        tdir = transformer_dir(model_dir)
        auto = transformers.AutoModelForSequenceClassification if task == "classification" else transformers.AutoModel
        model = auto.from_pretrained(str(tdir), attn_implementation="eager").eval()
        import inspect

        takes_types = "token_type_ids" in inspect.signature(model.forward).parameters

        class Wrapper(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, input_ids, attention_mask, token_type_ids=None):
                if takes_types:
                    kw = {"token_type_ids": token_type_ids if token_type_ids is not None else torch.zeros_like(input_ids)}
                else:
                    kw = {}
                out = self.m(input_ids=input_ids, attention_mask=attention_mask, **kw)
                return out.logits if task == "classification" else out.last_hidden_state

        ids = torch.ones(2, 16, dtype=torch.long)
        import warnings

        names = ["input_ids", "attention_mask"] + (["token_type_ids"] if task == "classification" else [])
        output = "logits" if task == "classification" else "last_hidden_state"
        axes = {n: {0: "b", 1: "s"} for n in names}
        axes[output] = {0: "b"} if task == "classification" else {0: "b", 1: "s"}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Wrapper(model), tuple(ids.clone() for _ in names), str(tmp / "raw.onnx"),
                input_names=names, output_names=[output], dynamic_axes=axes,
                opset_version=17, do_constant_folding=True, dynamo=False,
            )
        final = tmp / "raw.onnx"
        cfg = json.loads((tdir / "config.json").read_text())
        try:
            from onnxruntime.transformers.optimizer import optimize_model

            opt = optimize_model(
                str(final), model_type="bert", num_heads=int(cfg.get("num_attention_heads", 0)),
                hidden_size=int(cfg.get("hidden_size", 0)), opt_level=0,
            )
            opt.save_model_to_file(str(tmp / "fused.onnx"))
            final = tmp / "fused.onnx"
        except Exception:  # an architecture the optimizer does not know: ORT's generic fusions still apply
            pass
        os.replace(final, tmp / "model.onnx")
        for name in ("raw.onnx", "fused.onnx"):
            (tmp / name).unlink(missing_ok=True)
        try:
            os.rename(tmp, out_dir)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


class OnnxSentenceEncoder(BucketedEncoder):
    """Encode texts with an exported sentence-transformers model under ONNX Runtime (float32).

    Args:
        path: a sentence-transformers model folder or hub name.
        cache_dir: where exported graphs are kept.
        max_seq_length: truncation in word pieces; default: the model's ``sentence_bert_config.json``.
        threads: intra-op threads (default: :func:`~retrievo.encoders.base.default_threads`).
    """

    def __init__(self, path: str, cache_dir: Path, max_seq_length: int | None = None, threads: int | None = None) -> None:
        super().__init__(path, max_seq_length)
        ort = require("onnxruntime")
        onnx_path = export_onnx(self.root, Path(cache_dir) / file_key(self.root))
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = int(threads or default_threads())
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])

    def _forward(self, batches):
        for input_ids, mask in batches:
            yield self.session.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]
