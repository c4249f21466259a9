"""`pcle prompts ...`: generate, inspect and hand-edit prompt corpora.

Every user-facing failure is a KnowledgeEngineError turned into one line on stderr and exit code 1;
no tracebacks. The API key is read from --api-key or OPENAI_API_KEY and never printed.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from knowledge_engine.backends import BackendConfig
from knowledge_engine.backends.base import Sampling
from knowledge_engine.classes import class_file, load_classes
from knowledge_engine.errors import KnowledgeEngineError
from knowledge_engine.generate import RunConfig, summary_table
from knowledge_engine.templates import DEFAULT_TEMPLATES

app = typer.Typer(help="Stage 1: generate, inspect and edit prompt corpora.", no_args_is_help=True)
out = Console(soft_wrap=True)  # long paths and messages stay on one line, whatever the terminal width
err = Console(stderr=True, soft_wrap=True)


def clean_errors(fn):
    """Turn expected failures into a one-line message and exit code 1."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KnowledgeEngineError as e:
            err.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("interrupted: completed requests are cached; rerun to continue")
            raise typer.Exit(130) from None
    return wrapper


def _gen_options(dataset, classes, backend, base_url, model, api_key, templates, n, seed, temperature,
                 top_p, max_tokens, concurrency, max_retries, backoff_base, backoff_max, timeout,
                 invalid_retries, retry_invalid, structured, out_path, cache, overwrite_edits, progress,
                 tensor_parallel_size):
    from knowledge_engine.run import GenerateOptions

    if dataset is None and classes is None:
        dataset = "nw-ucla"
    return GenerateOptions(
        dataset=dataset,
        classes=classes,
        backend=BackendConfig(kind=backend, base_url=base_url or None, model=model or None,
                              api_key=api_key or None, timeout=timeout, structured=structured,
                              tensor_parallel_size=tensor_parallel_size),
        templates=tuple(t.strip() for t in templates.split(",") if t.strip()),
        sampling=Sampling(temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed, n=n),
        run=RunConfig(concurrency=concurrency, max_retries=max_retries, backoff_base=backoff_base,
                      backoff_max=backoff_max, invalid_retries=invalid_retries, retry_invalid=retry_invalid,
                      progress=progress),
        out=out_path,
        cache=cache,
        overwrite_edits=overwrite_edits,
    )


# Options shared by `generate` and `diff` (regeneration from the cache needs the same request keys).
DATASET = typer.Option(None, help="Dataset whose class list to use (nw-ucla, ntu60, ntu120); "
                       "default nw-ucla.")
CLASSES = typer.Option(None, help="A class-name file (one per line) for a custom dataset.")
BACKEND = typer.Option("auto", help="auto | openai | vllm | llama | llama-server. auto: openai when a "
                       "base URL is set, else the embedded SmolLM2 model.")
BASE_URL = typer.Option(None, envvar="OPENAI_BASE_URL",
                        help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1.")
MODEL = typer.Option(None, envvar="LLM_MODEL",
                     help="Model name on the server (vllm: path or name; llama: .gguf path).")
API_KEY = typer.Option(None, envvar="OPENAI_API_KEY", show_default=False, show_envvar=True,
                       help="API key (never logged or cached).")
TEMPLATES = typer.Option(",".join(DEFAULT_TEMPLATES), help="Comma-separated template names or files "
                         "(synonyms,parts = two requests per class; combined = one).")
N = typer.Option(2, help="Samples per request (synonyms are merged across samples).")
SEED = typer.Option(0, help="Base seed (retries use seed+1, seed+2, ...).")
TEMPERATURE = typer.Option(0.7)
TOP_P = typer.Option(0.95)
MAX_TOKENS = typer.Option(256)
STRUCTURED = typer.Option(None, help="json_schema | json_object | none (default: the backend's).")
OUT = typer.Option(None, "--out", help="Corpus file (default prompts/generated/<dataset>-<model>.jsonl).")
CACHE = typer.Option(None, help="Cache file (default prompts/cache/<dataset>-<model>.jsonl).")
TIMEOUT = typer.Option(120.0, help="Per-call timeout in seconds.")


@app.command()
@clean_errors
def generate(
    dataset: str = DATASET, classes: Path = CLASSES, backend: str = BACKEND, base_url: str = BASE_URL,
    model: str = MODEL, api_key: str = API_KEY, templates: str = TEMPLATES, n: int = N, seed: int = SEED,
    temperature: float = TEMPERATURE, top_p: float = TOP_P, max_tokens: int = MAX_TOKENS,
    concurrency: int = typer.Option(8, help="Most calls in flight at once."),
    max_retries: int = typer.Option(5, help="Retries per call on 429/5xx/timeouts/connection errors."),
    backoff_base: float = typer.Option(0.5, help="First backoff in seconds (doubles, with jitter)."),
    backoff_max: float = typer.Option(30.0, help="Longest backoff (also caps Retry-After)."),
    timeout: float = TIMEOUT,
    invalid_retries: int = typer.Option(3, help="Extra calls per request for invalid or truncated replies."),
    retry_invalid: bool = typer.Option(False, help="Resend requests cached as invalid."),
    structured: str = STRUCTURED, out_path: Path = OUT, cache: Path = CACHE,
    overwrite_edits: bool = typer.Option(False, help="Replace hand-edited records too."),
    strict: bool = typer.Option(False, help="Exit 1 when a class had to use fallback text."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    tensor_parallel_size: int = typer.Option(1, help="vllm backend: GPUs per model."),
) -> None:
    """Generate (or complete) a corpus: only requests missing from the cache are sent."""
    from knowledge_engine.run import generate_corpus

    opts = _gen_options(dataset, classes, backend, base_url, model, api_key, templates, n, seed, temperature,
                        top_p, max_tokens, concurrency, max_retries, backoff_base, backoff_max, timeout,
                        invalid_retries, retry_invalid, structured, out_path, cache, overwrite_edits,
                        progress, tensor_parallel_size)
    result = generate_corpus(opts, console=err)
    for w in result.cache_warnings:
        err.print(f"[yellow]warning:[/yellow] {escape(w)}", highlight=False)
    err.print(summary_table(result.stats))
    _report(result)
    if result.stats.failed or (strict and result.fallback):
        raise typer.Exit(1)


def _report(result) -> None:
    for line in result.stats.failed_requests:
        err.print(f"[red]failed (not cached, rerun to retry):[/red] {escape(line)}", highlight=False)
    for line in result.stats.invalid_requests:
        err.print(f"[yellow]no valid reply:[/yellow] {escape(line)}", highlight=False)
    for name, fields in result.fallback.items():
        err.print(f"[yellow]fallback text for {escape(repr(name))}:[/yellow] {', '.join(fields)} "
                  "(edit by hand, or rerun with --retry-invalid / another model)", highlight=False)
    if result.kept_edits:
        kept = ", ".join(result.kept_edits)
        err.print(f"kept {len(result.kept_edits)} hand-edited record(s): {kept}", markup=False,
                  highlight=False)
    err.print(f"wrote {len(result.records)} records to {result.out} (cache {result.cache})",
              highlight=False, markup=False)


@app.command()
@clean_errors
def show(corpus: Path, cls: str = typer.Argument(None, metavar="[CLASS]", help="Class id or name.")) -> None:
    """Print a corpus as a table, or one class in full."""
    from knowledge_engine.inspect_corpus import corpus_table, find_record, load_records, record_table

    records = load_records(corpus)
    if cls is not None:
        out.print(record_table(find_record(records, cls)))
    else:
        out.print(corpus_table(records, str(corpus)))


@app.command()
@clean_errors
def validate(
    corpus: Path,
    dataset: str = typer.Option(None, help="Also check that every class of this dataset has a record."),
    classes: Path = CLASSES,
    strict: bool = typer.Option(False, help="Treat warnings (fallback text) as errors."),
) -> None:
    """Schema and content checks: blank fields, duplicates, synonyms naming another class."""
    from knowledge_engine.inspect_corpus import validate_corpus

    names = load_classes(class_file(dataset, classes)) if (dataset or classes) else None
    findings = validate_corpus(corpus, names)
    for f in findings:
        err.print(str(f), highlight=False, markup=False)
    errors = [f for f in findings if f.level == "error" or strict]
    if errors:
        raise KnowledgeEngineError(f"{corpus}: {len(errors)} problem(s)")
    out.print(f"{corpus}: valid ({len(findings)} warning(s))", highlight=False, markup=False)


@app.command()
@clean_errors
def diff(
    first: Path,
    second: Path = typer.Argument(None, help="Omit to compare against a regeneration from the cache."),
    dataset: str = DATASET, classes: Path = CLASSES, backend: str = BACKEND, base_url: str = BASE_URL,
    model: str = MODEL, templates: str = TEMPLATES, n: int = N, seed: int = SEED,
    temperature: float = TEMPERATURE, top_p: float = TOP_P, max_tokens: int = MAX_TOKENS,
    structured: str = STRUCTURED, cache: Path = CACHE,
) -> None:
    """Differences between two corpora, or between a corpus and what `generate` would write."""
    from knowledge_engine.inspect_corpus import diff_records, load_records
    from knowledge_engine.run import regenerate_in_memory

    if second is not None:
        other = load_records(second)
    else:
        opts = _gen_options(dataset, classes, backend, base_url, model, None, templates, n, seed, temperature,
                            top_p, max_tokens, 1, 0, 0.0, 0.0, 1.0, 0, False, structured, first, cache, False,
                            False, 1)
        other = regenerate_in_memory(opts)
    lines = diff_records(load_records(first), other)
    for line in lines:
        out.print(line, highlight=False, markup=False)
    out.print(f"{len(lines)} difference(s)", highlight=False)


@app.command()
@clean_errors
def edit(corpus: Path, cls: str = typer.Argument(..., metavar="CLASS", help="Class id or name.")) -> None:
    """Open one record in $EDITOR; the corpus changes only if the result is valid."""
    from knowledge_engine.edit import edit_record

    new = edit_record(corpus, cls)
    out.print("no change" if new is None else f"saved class {new['class_id']} ({new['name']}), marked edited",
              highlight=False)


@app.command("export")
@clean_errors
def export_cmd(
    corpus: Path,
    synonyms: Path = typer.Option(..., help="Output: comma-separated synonyms, one line per class."),
    parts: Path = typer.Option(..., help="Output: name;head;hand;arm;hip;leg;foot per line."),
) -> None:
    """Write a corpus in GAP's text layout."""
    from knowledge_engine.gap_format import export_gap
    from knowledge_engine.inspect_corpus import load_records

    export_gap(load_records(corpus), synonyms, parts)
    out.print(f"wrote {synonyms} and {parts}", highlight=False)


@app.command("import")
@clean_errors
def import_cmd(
    synonyms: Path = typer.Option(..., help="GAP synonyms file."),
    parts: Path = typer.Option(..., help="GAP parts file."),
    out_path: Path = typer.Option(..., "--out", help="Corpus file to write."),
    dataset: str = typer.Option(None, help="Take class names from this dataset's list."),
    classes: Path = CLASSES,
) -> None:
    """Read GAP's text layout into a corpus (source `imported`)."""
    from knowledge_engine.assemble import write_atomic
    from knowledge_engine.gap_format import import_gap

    names = load_classes(class_file(dataset, classes)) if (dataset or classes) else None
    records = import_gap(synonyms, parts, names)
    write_atomic(out_path, records)
    out.print(f"wrote {len(records)} records to {out_path}", highlight=False)


def _dump(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)
