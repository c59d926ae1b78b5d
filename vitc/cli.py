"""The ``vitc`` command: classify images, convert checkpoints, describe models, evaluate, benchmark.

Every subcommand's arguments and printing live here; the library modules take Python values and
return results (nothing else parses argv).

Errors a user can fix (a missing file, a bad checkpoint, wrong options) print one line and exit
with status 1; --help explains every option with an example. A closed output pipe
(``vitc predict | head -2``) ends the command quietly with status 141. ``vitc predict`` streams its
results and reports each image it cannot read on stderr, going on with the others (status 1 at the
end if any failed); Ctrl-C ends a command with status 130, keeping what was printed or written.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import warnings
from pathlib import Path

from vitc.eval.dataset import CLASS_MAPPINGS
from vitc.eval.run import DEFAULT_TOP_K, evaluate, merge

TOP_LEVEL_EPILOG = """examples:
  vitc predict                                  # the embedded model on its sample images
  vitc predict --model vit-large-patch16-512.vitc cat.jpg --top-k 3
  vitc convert ./vit-large-patch16-512 vit-large-patch16-512.vitc
  vitc convert kakaobrain/vit-large-patch16-512 vit-large-patch16-512.vitc   # a hub ID: cache or download
  vitc info vit-large-patch16-512.vitc
  vitc --threads 4 predict --json cat.jpg       # options of vitc itself come before COMMAND

Run 'vitc COMMAND --help' for a command's options and examples."""

EXAMPLES = {
    "predict": """examples:
  vitc predict                                  # the embedded model on its sample images
  vitc predict --model vit-large-patch16-512.vitc cat.jpg dog.png --top-k 3
  vitc predict --model ./hf-folder images/*.jpg --batch-size 4 --json > preds.json
  vitc predict --explain maps/ cat.jpg          # also write attention-map overlays as PNG

Results are printed as each batch finishes (Ctrl-C keeps every line already printed). --json
prints JSON lines, one record per image, in input order:
  {"image": "cat.jpg", "predictions": [{"label": "tabby", "probability": 0.91}, ...]}
with the top-k labels most probable first and their scores (softmax of the logits, or what --function
or the model's problem_type picks, as pipeline("image-classification") does).
An image that cannot be read (missing, not an image, corrupt, too large, ...) is reported on
stderr with its kind and the others are still predicted; a summary line counts the failures.

exit status: 0 every image predicted; 1 some image could not be read (the others were printed),
or an error before any prediction (a bad option or model); 130 interrupted (Ctrl-C); 141 the
reader of stdout went away (vitc predict | head).""",
    "convert": """examples:
  vitc convert ./vit-large-patch16-512 vit-large-patch16-512.vitc
  vitc convert ./vit-large-patch16-512 vit-large-patch16-512-int8.vitc --dtype int8
  vitc convert kakaobrain/vit-large-patch16-512 vit-l.vitc --revision refs/pr/2
  (the source is a Hugging Face folder: config.json + model.safetensors or pytorch_model.bin, or a hub
  ID, read from the Hugging Face cache or downloaded with huggingface_hub: pip install 'vitc[hub]')

--dtype bfloat16 / int8 store the blocks' four weight matrices (QKV, attention output, fc1, fc2)
already packed for vitc's bf16 / int8 kernels: about 1/2 / 1/4 of the float32 file for ViT-sized
models, loaded memory-mapped in that precision with no packing at load, with the same logits as
loading the float32 file with that --dtype. Layernorms, biases, embeddings and the head stay
float32. Such a file loads only in its own precision: convert from the float32 checkpoint for
another one. A file is tied to the kernels' packing layout; another vitc version may refuse it.""",
    "info": """examples:
  vitc info vit-large-patch16-512.vitc
  vitc info ./vit-large-patch16-512 --json
  vitc info vit-large-patch16-512.vitc --verify   # check every tensor's checksum: exit status 1 if damaged

--verify reads the whole file once (~0.5 s per GB) and prints "checksums OK", or names the damaged
tensors and exits with status 1. A .vitc file of format 1 (vitc before checksums) and a Hugging Face
checkpoint have no checksums: --verify says so and exits with status 0; convert again to get them.""",
}


REVISION_HELP = (
    "for a hub ID: the branch, tag, refs/pr/N or commit hash (default: main). Hub IDs are read from the "
    "Hugging Face cache (HF_HUB_CACHE / HF_HOME), else downloaded with huggingface_hub unless HF_HUB_OFFLINE=1"
)

# Status after the reader of stdout went away (vitc predict | head -2): 128 + SIGPIPE, what a C tool
# killed by SIGPIPE reports, so `set -o pipefail` scripts still see that the output was cut short,
# while nothing is printed (the reader asked for no more).
EXIT_BROKEN_PIPE = 141
# The --explain pass runs one forward per image: show a bar (on a terminal) past this many images,
# as predict does past 4 batches.
EXPLAIN_BAR_MIN_IMAGES = 4
# Status of a `vitc predict` in which some images could not be read (the others were printed).
EXIT_IMAGES_FAILED = 1


class UserError(Exception):
    """A mistake the user can fix: reported as one line, no traceback."""


class _UsageError(Exception):
    """A command line argparse rejects; the message names the (sub-)command."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line as one line with status 1 (not usage + status 2)."""

    def error(self, message: str):
        raise _UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _explanation_names(images: list[str]) -> list[str]:
    """One PNG name per image, ``<stem>_attention.png``, made unique when two images share a stem."""
    names, seen = [], set()
    for i, image in enumerate(images):
        name = Path(image).stem + "_attention.png"
        if name in seen:
            name = f"{Path(image).stem}_{i}_attention.png"
        seen.add(name)
        names.append(name)
    return names


def _resolve(name: str | None, revision: str | None, what: str = "model") -> Path | None:
    """A model argument as a local path: hub IDs from the Hugging Face cache or downloaded."""
    if name is None:
        if revision is not None:
            raise UserError("--revision is the revision of a hub model: name the model too")
        return None
    from vitc.io.hub import ModelNotFoundError, resolve_model

    try:
        path = resolve_model(name, revision=revision)
    except ModelNotFoundError as exc:
        raise UserError(f"{what} not found: {exc.name}: {exc.detail}") from None
    if not path.exists():
        raise UserError(f"{what} not found: {name}")
    return path


def _model_arg(path: Path | None, dtype: str | None = None, mmap: bool = True):
    import vitc
    from vitc.default_model import DEFAULT_MODEL_PATH

    return vitc.ViT.from_pretrained(DEFAULT_MODEL_PATH if path is None else path, dtype=dtype, mmap=mmap)


def _model_inputs(path: str | os.PathLike | None) -> dict[Path, str]:
    """The files a local model path reads (a .vitc file, or an HF folder's config, weights and
    shards), for refusing outputs that would replace them; {} for none or a hub ID."""
    if path is None or not Path(path).exists():
        return {}
    from vitc.io.hf import input_files
    from vitc.io.vitc_file import is_vitc_path

    p = Path(path)
    try:
        return {p: "model file"} if is_vitc_path(p) else {k: f"model's {v}" for k, v in input_files(p).items()}
    except (OSError, ValueError):  # not loadable: the load itself reports it
        return {p: "model"}


def _explain_dir(text: str) -> Path:
    """Create the --explain folder, or say in one line why it cannot be."""
    out_dir = Path(text)
    for existing in (out_dir, *out_dir.parents):
        if existing.exists():
            if not existing.is_dir():
                where = "" if existing == out_dir else f" (cannot create {out_dir} inside it)"
                raise UserError(f"--explain: not a directory: {existing}{where}")
            break
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--explain: cannot create directory {out_dir}: {exc.strerror or exc}") from None
    return out_dir


def _default_model_note(command: str) -> str:
    """The one line that says the embedded model runs because no --model was given."""
    return (
        f"vitc {command}: no --model given: using vitc's embedded MNIST digits model (10 classes, 28x28 "
        "digits); pass --model (a .vitc file, Hugging Face folder or hub ID) for your own"
    )


def _prediction_text(image: str, pred, as_json: bool) -> str:
    if as_json:
        record = {"image": image, "predictions": [{"label": lb, "probability": p} for lb, p in pred]}
        return json.dumps(record) + "\n"
    return _printable(image + "\n" + "".join(f"  {p:7.2%}  {label}\n" for label, p in pred))


def cmd_predict(args: argparse.Namespace) -> int:
    from vitc.default_model import sample_images
    from vitc.predict import describe_failures, interrupts_deferred, iter_predictions

    model_path = _resolve(args.model, args.revision)
    images = list(args.images)
    if not images:
        if args.model is not None:
            raise UserError("no images given (the sample images belong to the embedded model; pass IMAGE ...)")
        images = [str(p) for p in sample_images()]
    out_dir = _explain_dir(args.explain) if args.explain else None
    if out_dir is not None:  # an explanation PNG never replaces an input image or the model
        from vitc.io.atomic import refuse_overwriting_inputs

        inputs = {Path(p): "input image" for p in images} | _model_inputs(model_path)
        for name in _explanation_names(images):
            refuse_overwriting_inputs(out_dir / name, inputs, "predict --explain: the output")
    model = _model_arg(model_path, args.dtype, mmap=not args.no_mmap)
    if args.model is None and args.images:  # (the sample images are for the embedded model)
        print(_default_model_note("predict"), file=sys.stderr)
    on_terminal = sys.stderr.isatty()
    preds = iter_predictions(
        model,
        images,
        top_k=args.top_k,
        batch_size=args.batch_size,
        progress=None if on_terminal else False,
        function_to_apply=args.function,
    )
    # Each result is printed (and flushed) as its batch finishes: an interrupted run keeps every
    # line already printed, and each line is written whole (Ctrl-C is held while it is written).
    read, failed = [], []
    for image, pred in zip(images, preds, strict=True):
        with interrupts_deferred():
            if pred.error is not None:
                failed.append(pred.error.kind)
                sys.stdout.flush()  # keep stdout and stderr in input order on a shared terminal
                print(f"vitc predict: error: {pred.error.kind}: {pred.error}", file=sys.stderr, flush=True)
                continue
            read.append(image)
            sys.stdout.write(_prediction_text(image, pred, args.json))
            sys.stdout.flush()
    if out_dir is not None and read:
        from vitc.predict import explain, progress_bar, save_png

        bar = progress_bar(len(read), "explain", on_terminal and len(read) > EXPLAIN_BAR_MIN_IMAGES)
        try:
            for image, name in zip(read, _explanation_names(read), strict=True):
                save_png(explain(model, image), out_dir / name)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
    if failed:
        from vitc.predict import count_error_kinds

        summary = describe_failures(count_error_kinds(failed), len(images))
        print(f"vitc predict: {summary}; {len(read)} predicted", file=sys.stderr)
        return EXIT_IMAGES_FAILED
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    import vitc

    src = _resolve(args.src, args.revision, "source")
    dst = vitc.convert(src, args.dst, dtype=args.dtype, progress=sys.stderr.isatty())
    print(f"wrote {dst} ({args.dtype} weights, {os.path.getsize(dst) / 1e6:.1f} MB)")
    return 0


def _printable(text: str) -> str:
    """``text`` as the terminal can print it: a label may hold a lone surrogate (valid JSON, kept by
    transformers and vitc), which no encoding can write; shown as its escape."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
        return text
    except UnicodeEncodeError:
        return text.encode(encoding, "backslashreplace").decode(encoding)
    except LookupError:
        return text


def cmd_info(args: argparse.Namespace) -> int:
    import vitc
    from vitc.default_model import DEFAULT_MODEL_PATH
    from vitc.io.vitc_file import NoChecksumsWarning

    path = _resolve(args.model, args.revision) or DEFAULT_MODEL_PATH
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NoChecksumsWarning)
        # ChecksumError (a ValueError naming the damaged tensors) ends the command with status 1.
        model = vitc.ViT.from_pretrained(path, verify=args.verify, mmap=not args.no_mmap)
    notes = [str(w.message) for w in caught if issubclass(w.category, NoChecksumsWarning)]
    for w in caught:
        if not issubclass(w.category, NoChecksumsWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    c = model.config
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
    labels = model.id2label
    info = {
        "path": str(path),
        "architecture": "ViTForImageClassification" if model.has_classifier else "ViTModel",
        "image_size": list(c.image_hw),
        "patch_size": model.patch_size,
        "hidden_size": c.hidden_size,
        "num_hidden_layers": c.num_hidden_layers,
        "num_attention_heads": c.num_attention_heads,
        "intermediate_size": c.intermediate_size,
        "hidden_act": c.hidden_act,
        "layer_norm_eps": c.layer_norm_eps,
        "qkv_bias": c.qkv_bias,
        "parameters": model.num_parameters(),
        "dtype": model.dtype,
        "num_labels": model.num_labels,
        "labels": [labels[i] for i in sorted(labels)],  # in class-id order
        "labels_preview": [labels[i] for i in sorted(labels)[:5]],
        "preprocessing": model.image_processor.to_dict(),
        "file_size_bytes": size,
    }
    if args.verify:
        info["checksums"] = "none" if notes else "ok"
    if args.json:
        print(json.dumps(info, indent=2))
        for note in notes:
            print(f"vitc info: note: {note}", file=sys.stderr)
        return 0
    print(_printable(f"{info['architecture']} at {info['path']}"))
    print(f"  image {c.image_hw[0]}x{c.image_hw[1]}, patch {model.patch_size}, hidden {c.hidden_size}, "
          f"{c.num_hidden_layers} layers, {c.num_attention_heads} heads, MLP {c.intermediate_size} ({c.hidden_act})")
    print(f"  layer_norm_eps {c.layer_norm_eps:g}, qkv_bias {c.qkv_bias}")
    print(f"  parameters {info['parameters']:,}; weights {model.dtype}; file {size / 1e6:.1f} MB")
    preview = ", ".join(info["labels_preview"])
    print(_printable(f"  labels {model.num_labels}: {preview}{' ...' if model.num_labels > 5 else ''}"))
    pre = info["preprocessing"]
    print(f"  preprocessing: resize to {pre['size']} (resample {pre['resample']}), "
          f"rescale {pre['rescale_factor']:.6g}, mean {pre['image_mean']}, std {pre['image_std']}")
    if args.verify:
        for note in notes:
            print(_printable(f"  checksums: none to verify: {note}"))
        if not notes:
            print("  checksums OK (crc32 of the header and of every tensor)")
    return 0


# ---------------------------------------------------------------------------------------------
# vitc eval

EVAL_EXAMPLES = """examples:
  vitc eval --model vit.vitc imagenet-val/             # ImageFolder tree: one folder per class
  vitc eval --model ./hf-folder val_list.txt           # lines 'path<TAB>label_index'
  vitc eval --model vit.vitc val/ --output preds.jsonl # run again after an interrupt: it resumes
  vitc eval --model vit.vitc val/ --shard 0/4 --output s0.jsonl   # ... one per machine, then:
  vitc eval --merge s0.jsonl s1.jsonl s2.jsonl s3.jsonl --output all.jsonl --json
  vitc eval --model vit.vitc val/ --ray local --workers 2          # Ray Data (pip install '.[ray]')

class folders map to labels by name if every folder is a label of the model, else folder i
(sorted) is class i, as torchvision's ImageFolder; force either with --class-mapping. Hidden
folders (.name) are skipped, unlike torchvision. Symlinked folders and files are followed, each
file counted once (a file reached by two paths, at its first path; link loops end).

An image that cannot be read is recorded with its kind (missing, unreadable, not_an_image,
corrupt, too_large, unsupported) and counted; the run goes on. An output file records its dataset
and model: resuming or merging files of another dataset or model is refused, and so is a damaged
or edited file (naming its line); an incomplete last line (a killed run) is dropped and redone.
Two runs cannot write one output at once: the second is refused (a killed run holds no lock).
exit status: 0 done; 1 an error (named on stderr); 130 interrupted (the output resumes)."""


def add_eval_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``eval`` sub-command to the ``vitc`` parser (its handler is :func:`cmd_eval`)."""
    help_text = (
        "Evaluate a classifier on a labelled image set: top-k accuracy, per-class accuracy, confusions."
    )
    p = subparsers.add_parser(
        "eval",
        help=help_text,
        description=help_text,
        epilog=EVAL_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "dataset",
        metavar="DATASET",
        nargs="?",
        default=None,
        help="ImageFolder tree (a sub-folder per class) or a list file of 'path<TAB>label_index' lines",
    )
    p.add_argument(
        "--model",
        "-m",
        default=None,
        help="a .vitc file, Hugging Face model folder or hub ID (default: the embedded model)",
    )
    p.add_argument("--revision", default=None, help=REVISION_HELP)
    p.add_argument(
        "--batch-size", "-b", type=_positive_int, default=8, help="images per forward pass (default: 8)"
    )
    p.add_argument(
        "--top-k",
        "-k",
        type=_positive_int,
        nargs="+",
        default=None,
        metavar="K",
        help="top-k accuracies to report (default: 1 5; with --merge: those of the runs)",
    )
    p.add_argument(
        "--output",
        "-o",
        default=None,
        metavar="FILE",
        help="per-image predictions as JSON lines, appended per batch; an existing file is resumed "
        "(after Ctrl-C or a kill: run the same command again). One run writes a file at a time: a "
        "second is refused (with --merge: where to write the combined predictions)",
    )
    p.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="evaluate only images whose index %% N == I (combine the outputs with --merge)",
    )
    p.add_argument(
        "--class-mapping",
        default="auto",
        choices=CLASS_MAPPINGS,
        help="class folders -> labels: by label name, by sorted position, or auto (default)",
    )
    p.add_argument(
        "--merge",
        nargs="+",
        default=None,
        metavar="OUTPUT",
        help="combine shard output files into one result instead of evaluating",
    )
    p.add_argument(
        "--ray",
        default=None,
        metavar="ADDRESS",
        help="run on a Ray cluster ('local' starts one on this machine; 'auto' joins a running one)",
    )
    p.add_argument("--workers", type=_positive_int, default=2, help="Ray workers, one model each (default: 2)")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of text")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show the progress bar even when stderr is not a terminal (default: only on a terminal)",
    )
    bar.add_argument(
        "--no-progress", dest="progress", action="store_false", default=None, help="no progress bar"
    )
    p.set_defaults(func=cmd_eval)
    return p


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ARG001
    """``warnings.showwarning`` for the command line: the message alone, no source line."""
    print(f"vitc eval: warning: {message}", file=sys.stderr if file is None else file)


def cmd_eval(args: argparse.Namespace) -> int:
    """Handler of ``vitc eval``: user errors raise ValueError / FileNotFoundError.

    Warnings (sorted class folders, an incomplete merge, ...) are printed as one
    ``vitc eval: warning: ...`` line each.
    """
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        try:
            return _run_eval(args)
        except KeyboardInterrupt:
            # Every finished batch is already in the output (appended and flushed per batch).
            resume = f"; {args.output} holds the images done: run the same command to resume" if args.output else ""
            print(f"vitc eval: interrupted{resume}", file=sys.stderr)
            return 130


def _refuse_eval_output_over_inputs(args: argparse.Namespace) -> None:
    """--output is written (and rewritten atomically): never over the dataset's list file, the model
    or a file being merged. Resuming reads and extends --output itself, which is its purpose."""
    if args.output is None:
        return
    from vitc.io.atomic import refuse_overwriting_inputs

    if args.merge is not None:
        inputs = {Path(f): "file being merged" for f in args.merge}
    else:
        inputs = _model_inputs(args.model)
        if args.dataset is not None:
            inputs[Path(args.dataset)] = "dataset"
    refuse_overwriting_inputs(args.output, inputs, "eval: --output")


def _run_eval(args: argparse.Namespace) -> int:
    _refuse_eval_output_over_inputs(args)
    if args.merge is not None:
        if (
            args.dataset is not None
            or args.model is not None
            or args.shard is not None
            or args.ray is not None
        ):
            raise ValueError("--merge combines output files: it takes no DATASET, --model, --shard or --ray")
        result = merge(args.merge, output=args.output, top_k=args.top_k)
    else:
        if args.dataset is None:
            raise ValueError("expected a DATASET (an ImageFolder tree or a list file), or --merge FILES")
        progress = args.progress
        top_k = DEFAULT_TOP_K if args.top_k is None else args.top_k
        if args.revision is not None or (args.ray is not None and args.model is not None):
            from vitc.io.hub import resolve_model

            if args.model is None:
                raise ValueError("--revision is the revision of a hub model: give --model too")
            # a local folder every Ray worker can read; a revision evaluate() does not take
            args.model = str(resolve_model(args.model, revision=args.revision))
        if args.model is None:
            print(_default_model_note("eval"), file=sys.stderr)
        if args.ray is not None:
            if args.shard is not None:
                raise ValueError(
                    "--shard and --ray do not go together: Ray spreads the images over its workers"
                )
            import contextlib

            from vitc.eval.ray import evaluate_ray  # Ray is optional: imported only for --ray

            # Ray prints cluster events ("(raylet) A worker died ...") on stdout from a thread of its
            # own: they go to stderr, so that stdout holds the result alone (--json stays JSON).
            with contextlib.redirect_stdout(sys.stderr):
                result = evaluate_ray(
                    args.model,
                    args.dataset,
                    address=args.ray,
                    num_workers=args.workers,
                    batch_size=args.batch_size,
                    top_k=top_k,
                    output=args.output,
                    class_mapping=args.class_mapping,
                    progress=progress,
                )
        else:
            result = evaluate(
                args.model,
                args.dataset,
                batch_size=args.batch_size,
                top_k=top_k,
                output=args.output,
                shard=args.shard,
                progress=progress,
                class_mapping=args.class_mapping,
            )
    if args.json:
        json.dump(result.to_dict(), sys.stdout, indent=2)
        print()
    else:
        print(result.summary())
    return 0


# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vitc",
        description="Vision Transformer inference on the CPU with the outputs of Hugging Face transformers.",
        epilog=TOP_LEVEL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--threads", type=_positive_int, default=None,
                        help="threads for vitc and its BLAS, given before COMMAND, e.g. "
                        "'vitc --threads 4 predict cat.jpg' (default: all cores)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, epilog=EXAMPLES[name],
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    p = add("predict", "Classify images and print the top-k labels with probabilities.")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files (default: the embedded model's samples)")
    p.add_argument("--model", "-m", default=None, help="a converted .vitc file, a Hugging Face model folder "
                   "or a hub ID such as google/vit-base-patch16-224 (default: the small model embedded in vitc)")
    p.add_argument("--revision", default=None, help=REVISION_HELP)
    p.add_argument("--top-k", "-k", type=_positive_int, default=5, help="labels per image (default: 5)")
    p.add_argument("--function", default=None, choices=["softmax", "sigmoid", "none"],
                   help="function of the logits, as pipeline(image-classification)'s function_to_apply "
                   "(default: by the config: none for regression, sigmoid for multi-label or one label, "
                   "else softmax)")
    p.add_argument("--batch-size", "-b", type=_positive_int, default=8, help="images per forward pass (default: 8)")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "int8"],
                   help="precision of the weight matrices: a float32 model is packed to bfloat16 / int8 at "
                   "load; int8 is the fastest (AMX or AVX512-VNNI), its logits within ~0.1-0.2 of float32's "
                   "(cosine > 0.998) (default: as the model stores it)")
    p.add_argument("--json", action="store_true",
                   help='print JSON lines instead of text: one record per image, '
                   '{"image": PATH, "predictions": [{"label": LABEL, "probability": P}, ...]}, '
                   "most probable first, each printed as its batch finishes (see below)")
    p.add_argument("--explain", metavar="DIR", default=None,
                   help="write per image a PNG with the attention-rollout heat-map and the top label to DIR")
    p.add_argument("--no-mmap", action="store_true",
                   help="read the weights into memory instead of memory-mapping the file (a mapped file must "
                   "not be modified in place while it is in use)")
    p.set_defaults(func=cmd_predict)

    p = add("convert", "Convert a Hugging Face ViT checkpoint to a vitc file that loads by memory-mapping.")
    p.add_argument("src", metavar="SRC", help="Hugging Face model folder (or its weights file), or a hub ID")
    p.add_argument("--revision", default=None, help=REVISION_HELP)
    p.add_argument("dst", metavar="DST", help="output .vitc file (written atomically)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "int8"],
                   help="precision of the blocks' weight matrices, stored packed for the bf16 / int8 "
                   "kernels (int8: ~1/4 of the float32 file, bfloat16: ~1/2; see below) (default: float32)")
    p.set_defaults(func=cmd_convert)

    p = add("info", "Describe a model: architecture, parameters, labels, preprocessing, file size.")
    p.add_argument("model", metavar="MODEL", nargs="?", default=None,
                   help="a .vitc file, Hugging Face folder or hub ID (default: the embedded model)")
    p.add_argument("--revision", default=None, help=REVISION_HELP)
    p.add_argument("--json", action="store_true",
                   help="print one JSON object instead of text: path, architecture, image_size, patch_size, "
                   "hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, hidden_act, "
                   "layer_norm_eps, qkv_bias, parameters, dtype, num_labels, labels (all, in class-id order), "
                   "labels_preview, preprocessing (the preprocessor_config.json dict), file_size_bytes; "
                   'with --verify also "checksums": "ok" or "none" (nothing to verify)')
    p.add_argument("--verify", action="store_true",
                   help="check the checksum of every tensor of a .vitc file (the header's is checked on every "
                   "load): prints 'checksums OK', or names the damaged tensors and exits with status 1")
    p.add_argument("--no-mmap", action="store_true",
                   help="read the weights into memory instead of memory-mapping the file (a mapped file must "
                   "not be modified in place while it is in use)")
    p.set_defaults(func=cmd_info)

    add_eval_parser(sub)

    p = sub.add_parser("bench", help="Benchmark vitc against PyTorch and ONNX Runtime (pip install 'vitc[bench]').",
                       add_help=False)
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments of vitc/bench/run.py (see --help)")
    p.set_defaults(func=cmd_bench)
    return parser


def cmd_bench(args: argparse.Namespace) -> int:
    # The runner is vitc/bench/run.py (also benchmarks/run.py in a checkout); it parses its own
    # arguments, so --help reaches it.
    from vitc.bench.run import main as bench_main

    return bench_main(args.bench_args)


def _one_line(exc: BaseException) -> str:
    """An exception as one line: OSErrors without their '[Errno N]', multi-line messages joined."""
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename is not None else exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _silence_stdout() -> None:
    """Point stdout's file descriptor at /dev/null, so the interpreter's final flush of what is
    still buffered does not raise BrokenPipeError again (Python docs, "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # a stdout without a descriptor (captured)
        pass


def _stdout_reader_gone() -> bool:
    """True if stdout is a pipe whose reader has closed it (poll reports an error on its write end);
    a BrokenPipeError from anything else (a socket, a worker's pipe) is a real error."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # a stdout without a descriptor (captured)
        return False


def main(argv: list[str] | None = None) -> int:
    try:
        status = _run(argv)
        sys.stdout.flush()  # a closed pipe surfaces here, not in the interpreter's last flush
        return status
    except BrokenPipeError as exc:
        if not _stdout_reader_gone():
            command = (argv if argv is not None else sys.argv[1:])[:1] or [""]
            print(f"vitc {command[0]}: error: {_one_line(exc)}".replace("vitc : ", "vitc: "), file=sys.stderr)
            return 1
        _silence_stdout()
        return EXIT_BROKEN_PIPE


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and args.command == "bench":
            # argparse's REMAINDER leaves options that come first (vitc bench --help) unparsed
            args.bench_args = extra + args.bench_args
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except _UsageError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.threads is not None:
            import vitc

            vitc.set_num_threads(args.threads)
        return args.func(args)
    except BrokenPipeError:
        raise  # an OSError, but not the user's mistake: main ends quietly
    except (UserError, OSError, ValueError, NotImplementedError, MemoryError, ImportError) as exc:
        print(f"vitc {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"vitc {args.command}: interrupted", file=sys.stderr)
        return 130
