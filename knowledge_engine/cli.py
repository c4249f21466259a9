"""`pcle prompts ...`: generate, inspect and hand-edit prompt corpora.

Every user-facing failure is a KnowledgeEngineError (or a CorpusError) turned into one line on stderr
and exit code 1; no tracebacks. The API key is read from --api-key or OPENAI_API_KEY and never printed.

Exit codes of `generate`: 0 every class has generated text; 1 an error, or a request failed, was
refused or was left unsent by --max-tokens-total (the corpus is still written; rerun to complete);
3 the corpus was written but some classes use fallback text (1 with --strict).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from corpus import CorpusError
from corpus.interrupt import exit_code as interrupt_exit_code
from corpus.interrupt import sigterm_as_interrupt
from corpus.overwrite import OverwriteError
from knowledge_engine.backends import BackendConfig
from knowledge_engine.backends.base import Sampling
from knowledge_engine.classes import class_file, load_classes
from knowledge_engine.errors import KnowledgeEngineError
from knowledge_engine.generate import RunConfig, summary_table
from knowledge_engine.templates import DEFAULT_TEMPLATES

EXIT_FALLBACK = 3
MAX_LISTED = 20  # failures listed one per line; the rest are counted

app = typer.Typer(help="Stage 1: generate, inspect and edit prompt corpora.", no_args_is_help=True)
out = Console(soft_wrap=True)  # long paths and messages stay on one line, whatever the terminal width
err = Console(stderr=True, soft_wrap=True)


def clean_errors(fn):
    """Turn expected failures into a one-line message and exit code 1. SIGTERM (a cluster's preemption,
    `timeout`) is a Ctrl-C: the same message, the cache kept, exit code 143 (130 for Ctrl-C)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with sigterm_as_interrupt():
                return fn(*args, **kwargs)
        except (KnowledgeEngineError, CorpusError, OverwriteError) as e:
            err.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)
            raise typer.Exit(1) from None
        except OSError as e:  # a file the command reads or writes: name it, no traceback
            where = e.filename if e.filename is not None else "file system"
            err.print(f"[red]error:[/red] {escape(str(where))}: {escape(e.strerror or str(e))}", highlight=False)
            raise typer.Exit(1) from None
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (corpus/interrupt.py)
            err.print("interrupted: completed requests are cached; rerun to continue")
            raise typer.Exit(interrupt_exit_code(e)) from None
    return wrapper


def _gen_options(dataset, classes, backend, base_url, model, api_key, templates, n, seed, temperature,
                 top_p, max_tokens, concurrency, max_retries, backoff_base, backoff_max, timeout,
                 invalid_retries, retry_invalid, structured, out_path, cache, overwrite_edits, progress,
                 tensor_parallel_size, rpm=None, tpm=None, max_tokens_total=None, dry_run=False,
                 headers=(), extra_body=None, check_server=True):
    from knowledge_engine.run import GenerateOptions

    if dataset is None and classes is None:
        dataset = "nw-ucla"
    return GenerateOptions(
        dataset=dataset,
        classes=classes,
        backend=BackendConfig(kind=backend, base_url=base_url or None, model=model or None,
                              api_key=api_key or None, timeout=timeout, structured=structured,
                              tensor_parallel_size=tensor_parallel_size, headers=_headers(headers),
                              extra_body=_extra_body(extra_body)),
        templates=tuple(t.strip() for t in templates.split(",") if t.strip()),
        sampling=Sampling(temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed, n=n),
        run=RunConfig(concurrency=concurrency, max_retries=max_retries, backoff_base=backoff_base,
                      backoff_max=backoff_max, invalid_retries=invalid_retries, retry_invalid=retry_invalid,
                      progress=progress, rpm=rpm, tpm=tpm, max_tokens_total=max_tokens_total,
                      check_server=check_server),
        out=out_path,
        cache=cache,
        overwrite_edits=overwrite_edits,
        dry_run=dry_run,
    )


def _headers(values) -> dict[str, str]:
    """`--header 'K: V'` (repeatable) -> {K: V}."""
    out = {}
    for v in values or ():
        name, sep, value = v.partition(":")
        if not sep or not name.strip() or any(c in name for c in " \t\r\n") or "\n" in value:
            raise KnowledgeEngineError(f"--header {name.strip()!r}: give NAME:VALUE, e.g. 'X-Org: research'")
        out[name.strip()] = value.strip()
    return out


def _extra_body(text: str | None) -> dict:
    """`--extra-body '{"stop": ["\\n\\n"]}'`: more fields for every request, a JSON object."""
    if not text:
        return {}
    try:
        body = json.loads(text)
    except json.JSONDecodeError as e:
        raise KnowledgeEngineError(f"--extra-body: not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(body, dict):
        raise KnowledgeEngineError("--extra-body: give a JSON object, e.g. '{\"stop\": [\"}\"]}'")
    return body


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
COVER_DATASET = typer.Option(None, help="Also check that every class of this dataset has a record (without "
                              "CORPUS: check the corpus training on it reads).")
# Options shared by `generate` and `serve` (the review page's "regenerate" sends what `generate` would).
MAX_RETRIES = typer.Option(5, help="Retries per call on 429/5xx/timeouts/connection errors.")
BACKOFF_BASE = typer.Option(0.5, help="First backoff in seconds (doubles, with jitter).")
BACKOFF_MAX = typer.Option(30.0, help="Longest backoff (also caps Retry-After).")
INVALID_RETRIES = typer.Option(3, help="Extra calls per request for invalid or truncated replies.")
TENSOR_PARALLEL = typer.Option(1, help="vllm backend: GPUs per model.")
EXTRA_BODY = typer.Option(None, help="JSON object merged into every request (stop sequences, vLLM's guided "
                          "decoding, ...); part of the cache key.")
HEADER = typer.Option(None, help="Extra HTTP header NAME:VALUE (repeatable; values are treated as secrets).")
CHECK_SERVER = typer.Option(True, help="Ask the server for its models first (reachable, key accepted, model "
                            "served).")


@app.command()
@clean_errors
def generate(
    dataset: str = DATASET, classes: Path = CLASSES, backend: str = BACKEND, base_url: str = BASE_URL,
    model: str = MODEL, api_key: str = API_KEY, templates: str = TEMPLATES, n: int = N, seed: int = SEED,
    temperature: float = TEMPERATURE, top_p: float = TOP_P, max_tokens: int = MAX_TOKENS,
    concurrency: int = typer.Option(8, help="Most calls in flight at once."),
    max_retries: int = MAX_RETRIES, backoff_base: float = BACKOFF_BASE, backoff_max: float = BACKOFF_MAX,
    timeout: float = TIMEOUT, invalid_retries: int = INVALID_RETRIES,
    retry_invalid: bool = typer.Option(False, help="Resend requests cached as invalid."),
    structured: str = STRUCTURED, out_path: Path = OUT, cache: Path = CACHE,
    overwrite_edits: bool = typer.Option(False, help="Replace hand-edited records too."),
    strict: bool = typer.Option(False, help="Exit 1 (not 3) when a class had to use fallback text."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    tensor_parallel_size: int = TENSOR_PARALLEL,
    rpm: float = typer.Option(None, help="Most calls started per minute (evenly spaced)."),
    tpm: float = typer.Option(None, help="Most tokens per minute (prompt estimate + max-tokens x n)."),
    max_tokens_total: int = typer.Option(None, help="Token budget of this run: no call is sent that could "
                                         "exceed it; the rest is left for a later run."),
    dry_run: bool = typer.Option(False, help="Print how many requests would be sent; send nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the end-of-run summary as JSON on stdout."),
    extra_body: str = EXTRA_BODY, header: list[str] = HEADER, check_server: bool = CHECK_SERVER,
) -> None:
    """Generate (or complete) a corpus: only requests missing from the cache are sent.

    Exit codes: 0 every class has generated text; 1 error or a request failed / not sent (rerun to
    complete); 3 the corpus was written but some classes use fallback text (1 with --strict)."""
    from knowledge_engine.run import generate_corpus

    opts = _gen_options(dataset, classes, backend, base_url, model, api_key, templates, n, seed, temperature,
                        top_p, max_tokens, concurrency, max_retries, backoff_base, backoff_max, timeout,
                        invalid_retries, retry_invalid, structured, out_path, cache, overwrite_edits,
                        progress, tensor_parallel_size, rpm, tpm, max_tokens_total, dry_run, header,
                        extra_body, check_server)
    result = generate_corpus(opts, console=err)
    for w in result.cache_warnings:
        err.print(f"[yellow]warning:[/yellow] {escape(w)}", highlight=False)
    if result.dry_run is not None:
        _print_plan(result.dry_run)
        return
    for line in result.negotiation:
        err.print(f"[yellow]structured output:[/yellow] {escape(line)}", highlight=False)
    err.print(summary_table(result.stats))
    _report(result, opts.backend.timeout)
    code = exit_code(result, strict)
    if as_json:
        out.print_json(_dump(run_summary(result, code)))
    if code:
        raise typer.Exit(code)


EXIT_MEANING = {0: "every class has generated text",
                1: "a request failed, was not sent or the run stopped; or --strict and fallback text (rerun)",
                EXIT_FALLBACK: "the corpus was written but some classes use fallback text"}


def exit_code(result, strict: bool) -> int:
    s = result.stats
    if s.failed or s.skipped or s.stopped or s.stop_reason or result.kept_corpus:
        return 1
    if result.fallback:
        return 1 if strict else EXIT_FALLBACK
    return 0


def run_summary(result, code: int) -> dict:
    """`generate --json`: the summary table's numbers, the files written and what the exit code means."""
    s = result.stats
    return {
        "requests": s.requests, "cached": s.cached, "resumed": s.resumed, "calls": s.sent, "retried": s.retried,
        "invalid_replies": s.invalid, "failed": s.failed, "not_sent_budget": s.skipped, "not_sent_stopped": s.stopped,
        "stopped": s.stop_reason, "prompt_tokens": s.prompt_tokens, "completion_tokens": s.completion_tokens,
        "wall_s": round(s.wall_s, 3),
        "latency_s": {"p50": s.latency(0.5), "p90": s.latency(0.9), "max": s.latency(1.0)},
        "classes": s.classes, "fallback_classes": sorted(result.fallback),
        "failed_requests": s.failed_requests, "invalid_requests": s.invalid_requests,
        "corpus": str(result.out), "kept_corpus": str(result.kept_corpus[0]) if result.kept_corpus else None,
        "cache": str(result.cache), "log": str(result.log) if result.log else None,
        "exit_code": code, "exit_meaning": EXIT_MEANING[code],
    }


def _print_plan(plan: dict) -> None:
    out.print(f"dry run: {plan['to_send']} of {plan['requests']} requests would be sent "
              f"({plan['cached']} cached; {plan['classes']} classes; backend {plan['backend']}, model "
              f"{plan['model']}); at most {plan['worst_case_tokens']} tokens for their first calls",
              highlight=False, markup=False)
    if plan.get("missing"):
        out.print(f"note: a real run with backend {plan['backend']} needs {plan['missing']}, which is not installed "
                  "here (pip install '.[local]' for llama-cpp-python, '.[vllm]' for vllm)", highlight=False,
                  markup=False)


def _report(result, timeout: float) -> None:
    failed = result.stats.failed_requests
    for line in failed[:MAX_LISTED]:
        err.print(f"[red]failed (not cached, rerun to retry):[/red] {escape(line)}", highlight=False)
    if len(failed) > MAX_LISTED:
        err.print(f"[red]... and {len(failed) - MAX_LISTED} more failed request(s)[/red]", highlight=False)
    timed_out = sum(": timeout (after" in line for line in failed)
    if timed_out:
        err.print(f"[yellow]hint:[/yellow] {timed_out} request(s) timed out after --timeout {timeout:g} s: a slow "
                  "or busy server needs a longer --timeout", highlight=False)
    if result.stats.stop_reason:
        err.print(f"[red]stopped:[/red] {escape(result.stats.stop_reason)}; {result.stats.stopped} request(s) "
                  "not sent (fix the server, URL, key or model and rerun: done requests are cached)",
                  highlight=False)
    for line in result.stats.invalid_requests:
        err.print(f"[yellow]no valid reply:[/yellow] {escape(line)}", highlight=False)
    for name, fields in result.fallback.items():
        err.print(f"[yellow]fallback text for {escape(repr(name))}:[/yellow] {', '.join(fields)} "
                  "(edit by hand, or rerun with --retry-invalid / another model)", highlight=False)
    if result.kept_edits:
        kept = ", ".join(result.kept_edits)
        err.print(f"kept {len(result.kept_edits)} hand-edited record(s): {kept}", markup=False,
                  highlight=False)
    if result.kept_corpus:
        path, old = result.kept_corpus
        err.print(f"kept {path}: it has {old} class(es) with fallback text and the new corpus "
                  f"{len(result.fallback)}; the new one is written beside it", highlight=False, markup=False)
    err.print(f"wrote {len(result.records)} records to {result.out} (cache {result.cache}, call log "
              f"{result.log}); {len(result.fallback)} of {len(result.records)} classes use fallback text",
              highlight=False, markup=False)


@app.command()
@clean_errors
def show(corpus: Path, cls: str = typer.Argument(None, metavar="[CLASS]", help="Class id or name.")) -> None:
    """Print a corpus as a table, or one class in full."""
    from corpus import load_records
    from knowledge_engine.inspect_corpus import corpus_table, find_record, record_table

    records = load_records(corpus)
    if cls is not None:
        out.print(record_table(find_record(records, cls)))
    else:
        out.print(corpus_table(records, str(corpus)))


def dataset_corpus(corpus: Path | None, dataset: str | None) -> Path:
    """CORPUS, or without it the corpus `pcle train --dataset D` reads when no --prompts is given: the curated
    prompts/<D>.jsonl (`pcle prompts lint --dataset nw-ucla`, as the docs write it)."""
    if corpus is not None:
        return corpus
    from corpus import CURATED

    if dataset is None:
        raise KnowledgeEngineError("give a CORPUS file, or --dataset D for the corpus training on D reads "
                                   f"({', '.join(sorted(CURATED))})")
    if dataset not in CURATED:
        raise KnowledgeEngineError(f"--dataset {dataset}: no shipped corpus (datasets with one: "
                                   f"{', '.join(sorted(CURATED))}); give the CORPUS file")
    return CURATED[dataset]


CORPUS_ARG = typer.Argument(None, show_default=False, help="Corpus file; omit it with --dataset D for the "
                            "corpus training on D reads (the curated prompts/D.jsonl).")


@app.command()
@clean_errors
def validate(
    corpus: Path = CORPUS_ARG,
    dataset: str = COVER_DATASET,
    classes: Path = CLASSES,
    strict: bool = typer.Option(False, help="Treat warnings (fallback text) as errors."),
) -> None:
    """Schema and content checks: blank fields, duplicates, synonyms naming another class."""
    from knowledge_engine.inspect_corpus import validate_corpus

    corpus = dataset_corpus(corpus, dataset)
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
    from corpus import load_records
    from knowledge_engine.inspect_corpus import diff_records
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
    from corpus import load_records
    from knowledge_engine.gap_format import export_gap

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
    overwrite_edits: bool = typer.Option(False, help="Replace a corpus at --out that holds hand-edited records."),
) -> None:
    """Read GAP's text layout into a corpus (source `imported`); a hand-edited corpus at --out is kept
    (refused) unless --overwrite-edits."""
    from corpus import write_records
    from corpus.overwrite import refuse_edited_corpus, refuse_output
    from knowledge_engine.gap_format import import_gap

    refuse_output(out_path, "--out")
    refuse_edited_corpus(out_path, overwrite_edits)
    names = load_classes(class_file(dataset, classes)) if (dataset or classes) else None
    records = import_gap(synonyms, parts, names)
    write_records(out_path, records)
    out.print(f"wrote {len(records)} records to {out_path}", highlight=False)


def _dump(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


@app.command("log")
@clean_errors
def log_cmd(
    path: Path = typer.Argument(..., help="A cache file (its <cache>.calls.jsonl is read) or a call log."),
    cls: str = typer.Option(None, "--class", help="Calls whose class name contains this."),
    errors: bool = typer.Option(False, help="Only calls that failed."),
    limit: int = typer.Option(20, help="The last N calls (0: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print the full entries as JSON lines."),
) -> None:
    """The per-call log of `generate`: prompt, reply, latency, HTTP status, errors, model, tokens."""
    from knowledge_engine.call_log import read_log, select

    if limit < 0:
        raise KnowledgeEngineError(f"--limit: must be an integer of at least 0 (got {limit})")
    entries = select(read_log(path), cls, errors, limit or None)
    if as_json:
        for e in entries:
            out.print(_dump(e), highlight=False, markup=False, soft_wrap=True)
        return
    for e in entries:
        usage = e.get("usage") or {}
        head = (f"{e.get('time')}  {e.get('class')!r} [{e.get('template')}] attempt {e.get('attempt')}  "
                f"HTTP {e.get('status')}  {e.get('latency_s')} s  model {e.get('server_model') or e.get('model')}  "
                f"tokens {usage.get('prompt_tokens', '-')}/{usage.get('completion_tokens', '-')}")
        out.print(head, highlight=False, markup=False)
        prompt = next((m["content"] for m in reversed(e.get("messages") or []) if m.get("role") == "user"), "")
        out.print(f"  prompt: {' '.join(prompt.split())[:200]}", highlight=False, markup=False)
        for c in e.get("choices") or []:
            out.print(f"  reply ({c.get('finish_reason')}): {' '.join(str(c.get('text')).split())[:300]}",
                      highlight=False, markup=False)
        if e.get("error"):
            out.print(f"  error: {e['error']}", highlight=False, markup=False)
    out.print(f"{len(entries)} call(s)", highlight=False, markup=False)


@app.command()
@clean_errors
def lint(
    corpus: Path = CORPUS_ARG,
    dataset: str = COVER_DATASET,
    classes: Path = CLASSES,
    threshold: float = typer.Option(0.9, help="Cosine similarity at or above which texts of two classes "
                                    "count as near-duplicates."),
    encoder: str = typer.Option("minilm", help="Text encoder for the similarity checks (the recognizer's "
                                "text.encoder kinds); 'none' skips them."),
    encoder_path: str = typer.Option(None, help="Checkpoint directory for the clip / bert encoders."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Report what to fix before hand-editing: fallback text, near-duplicates across classes, identical
    part texts, copies of a template's example, lengths. Exit 1 on errors, 0 on warnings only."""
    from knowledge_engine.lint import LintOptions, counts, lint_corpus

    corpus = dataset_corpus(corpus, dataset)
    if not err.is_terminal:  # no "Loading weights" bar in a log or a pipe (README: bars on a terminal only)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    names = load_classes(class_file(dataset, classes)) if (dataset or classes) else None
    issues = lint_corpus(corpus, LintOptions(threshold, encoder, encoder_path), names)
    summary = counts(issues)
    if as_json:
        out.print_json(_dump({"corpus": str(corpus), "summary": summary, "issues": [i.as_dict() for i in issues]}))
    else:
        out.print(_lint_table(issues, str(corpus)))
        out.print(f"{corpus}: {summary['errors']} error(s), {summary['warnings']} warning(s)", highlight=False,
                  markup=False)
    if summary["errors"]:
        raise typer.Exit(1)


def _lint_table(issues, title: str):
    from rich.table import Table

    table = Table(title=f"lint {title}", show_lines=False)
    for col in ("level", "check", "where", "message"):
        table.add_column(col, overflow="fold")
    for i in issues:
        style = "red" if i.level == "error" else "yellow"
        table.add_row(f"[{style}]{i.level}[/{style}]", i.check, escape(i.where), escape(i.message))
    return table


cache_app = typer.Typer(help="Look into and tidy a generation cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")
CACHE_FILE = typer.Argument(..., help="Cache file (prompts/cache/<dataset>-<model>.jsonl).")


@cache_app.command("stats")
@clean_errors
def cache_stats(cache: Path = CACHE_FILE, as_json: bool = typer.Option(False, "--json")) -> None:
    """Rows, valid/invalid, calls, token usage, templates, models, negotiated structured output."""
    from knowledge_engine.cache_tools import open_cache, stats

    s = stats(open_cache(cache))
    if as_json:
        out.print_json(_dump(s))
        return
    for key, value in s.items():
        out.print(f"{key}: {value}", highlight=False, markup=False)


@cache_app.command("show")
@clean_errors
def cache_show(
    cache: Path = CACHE_FILE,
    cls: str = typer.Option(None, "--class", help="Rows whose class name contains this."),
    text: str = typer.Option(None, help="Rows whose request or replies contain this text."),
    as_json: bool = typer.Option(False, "--json", help="Print the full rows as JSON lines."),
) -> None:
    """Search cached requests and replies by class or text."""
    from rich.table import Table

    from knowledge_engine.cache_tools import open_cache, show

    rows = show(open_cache(cache), cls, text)
    if as_json:
        for r in rows:
            out.print(_dump(r), highlight=False, markup=False, soft_wrap=True)
        return
    table = Table(title=f"{cache}: {len(rows)} row(s)", show_lines=True)
    for col in ("class", "template", "status", "calls", "replies"):
        table.add_column(col, overflow="fold")
    for r in rows:
        replies = "\n".join(_dump(c) for c in r["choices"]) or "; ".join(x["reason"] for x in r.get("rejected", []))
        table.add_row(escape(str(r["request"].get("class"))), str(r["request"].get("template", {}).get("name")),
                      r["status"], str(r.get("calls")), escape(replies))
    out.print(table)


@cache_app.command("prune")
@clean_errors
def cache_prune(
    cache: Path = CACHE_FILE,
    templates: str = typer.Option(None, help="Comma-separated templates still in use (default: every "
                                  "template in prompts/templates/)."),
    dry_run: bool = typer.Option(False, help="Only count what would be dropped."),
) -> None:
    """Drop cached rows that no current template (name, version and text) asks for."""
    from knowledge_engine.cache_tools import current_templates, open_cache, prune

    open_cache(cache)  # a clear error for a missing file
    refs = tuple(t.strip() for t in templates.split(",") if t.strip()) if templates else None
    kept, dropped = prune(cache, current_templates(refs), dry_run)
    verb = "would drop" if dry_run else "dropped"
    out.print(f"{cache}: {verb} {dropped} row(s), kept {kept}", highlight=False, markup=False)


@cache_app.command("export")
@clean_errors
def cache_export(
    cache: Path = CACHE_FILE,
    out_path: Path = typer.Option(..., "--out", help="Output file."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl | csv"),
) -> None:
    """Write every valid cached reply (class, template, model, parsed reply), one per line."""
    from corpus.overwrite import refuse_output
    from knowledge_engine.cache_tools import export, open_cache

    refuse_output(out_path, "--out")
    n = export(open_cache(cache), out_path, fmt)
    out.print(f"wrote {n} replies to {out_path}", highlight=False, markup=False)


@app.command()
@clean_errors
def serve(
    corpora: list[Path] = typer.Argument(..., metavar="CORPUS [CORPUS]", help="One corpus, or two to compare."),
    port: int = typer.Option(8765, help="Port to listen on (0: any free port)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on; anything but loopback lets others edit."),
    allow_curated: bool = typer.Option(False, help="Let the page edit the curated corpora shipped in prompts/."),
    threshold: float = typer.Option(0.9, help="Lint: cosine similarity for near-duplicates."),
    encoder: str = typer.Option("minilm", help="Lint: text encoder for the similarity checks; 'none' skips them."),
    encoder_path: str = typer.Option(None, help="Lint: checkpoint directory for the clip / bert encoders."),
    backend: str = typer.Option("auto", help="Regenerate: as `generate --backend`; the button is off unless "
                                "--base-url is set or a backend other than auto is named."),
    base_url: str = BASE_URL, model: str = MODEL, api_key: str = API_KEY, templates: str = TEMPLATES, n: int = N,
    seed: int = SEED, temperature: float = TEMPERATURE, top_p: float = TOP_P, max_tokens: int = MAX_TOKENS,
    structured: str = STRUCTURED, cache: Path = CACHE, timeout: float = TIMEOUT, max_retries: int = MAX_RETRIES,
    backoff_base: float = BACKOFF_BASE, backoff_max: float = BACKOFF_MAX, invalid_retries: int = INVALID_RETRIES,
    tensor_parallel_size: int = TENSOR_PARALLEL, extra_body: str = EXTRA_BODY, header: list[str] = HEADER,
    check_server: bool = CHECK_SERVER,
) -> None:
    """Review and hand-edit corpora in the browser: lint findings on the strings they name, edits
    validated and saved atomically (marked edited), undo, two corpora side by side; with a backend
    (the options of `generate`), regenerate one class through the same cache."""
    from knowledge_engine.review import open_review

    regenerate = None
    if base_url or backend != "auto":
        regenerate = _gen_options(None, None, backend, base_url, model, api_key, templates, n, seed, temperature,
                                  top_p, max_tokens, 8, max_retries, backoff_base, backoff_max, timeout,
                                  invalid_retries, True, structured, None, cache, False, False,
                                  tensor_parallel_size, headers=header, extra_body=extra_body,
                                  check_server=check_server)
    open_review(corpora, port=port, host=host, allow_curated=allow_curated, threshold=threshold,
                encoder=encoder, encoder_path=encoder_path, regenerate=regenerate)
