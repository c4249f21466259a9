"""`pcle tables`: the result tables of README.md and docs/*.md, made from the committed run folders.

`docs/tables.yaml` (the spec, configs as data) says which table sits where (between
`<!-- table:NAME -->` and `<!-- /table:NAME -->` in a Markdown file), which run folders feed each row
and what each cell shows. `pcle tables` (`make tables`) rewrites those regions; `pcle tables --check`
only compares and prints one line per table that differs, so a number typed into a table by hand, or
a run folder changed without regenerating, fails (tests/results/test_tables.py runs the check).
Published numbers are spec rows with a `cite` key: kept as data, never computed.

Only small files are read (metrics.json, config.yaml, log.jsonl, ensemble and zero-shot JSON): no
checkpoint, no model, so the check takes well under a second.

Cell templates are text with `{placeholder}` or `{placeholder:D}` (D decimals, default 2) parts.
For a row of run folders (`runs:` a group name or a glob; seeds from config.yaml `run.seed`):
  {METRIC}          mean ± sample std over the row's runs (one run: its value); METRIC is a key of
                    metrics.json (top1, top5, mean_class_accuracy, ...) or top1_logits (head only), or of
                    its inference record (val_top1, val_top1_logits: validation top-1, rule and head)
  {METRIC.mean}     the mean alone; {METRIC@K} the run with seed K
  {seeds}, {runs}   "0, 1, 2" and the number of runs; {inference} the rule chosen per seed
  {paired.METRIC}   mean paired difference against the row's `paired:` group over the seeds both
                    have (signed); {paired.METRIC@K} seed K; {paired.METRIC.seeds} every seed's
  {delta.METRIC.GROUP...}  the same against a named GROUP, for tables whose rows share one reference
  {ens.NAME.top1} / {ens.NAME.top5} / {ens.NAME.seeds} / {ens.NAME.weight}  a `pcle ensemble --out` JSON
                    (weight: of the row's single run in that ensemble)
  {ens.NAME.delta.OTHER}  top-1 of ensemble NAME minus OTHER's (signed; both of the same seeds)
  {KEY}             any other key of the row: its text (a computed name needs `cite`: a published row)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import typer
import yaml

from recognizer.analysis.runs import RunInfo, _mean_std, read_run
from recognizer.checkpoint import atomic_write_text

SPEC = Path("docs/tables.yaml")
KINDS = ("rows", "per-class", "log", "zeroshot", "zeroshot-summary")
# names a row of run folders computes; typing one by hand into a row needs a `cite` (a published number)
COMPUTED = {"seeds", "runs", "inference", "top1", "top5", "top1_logits", "mean_class_accuracy", "epochs", "val_top1",
            "val_top1_logits"}
PLACEHOLDER = re.compile(r"\{([^{}:]+)(?::(\d+))?\}")
MARKER = "<!-- table:{name} -->"
END_MARKER = "<!-- /table:{name} -->"
ANY_MARKER = re.compile(r"^<!-- table:([\w.-]+) -->$", re.MULTILINE)  # a marker is a line of its own


class TableError(ValueError):
    """A spec, run folder or Markdown file that cannot make a table; the message names it."""


# ---------------------------------------------------------------- formatting

def number(x: float | None, decimals: int = 2) -> str:
    return "–" if x is None or np.isnan(x) else f"{x:.{decimals}f}"


def signed(x: float, decimals: int = 2) -> str:
    """+1.23, 0.00, −0.45 (a true minus sign, as the docs write differences)."""
    text = f"{abs(x):.{decimals}f}"
    if text == f"{0:.{decimals}f}":
        return text
    return ("+" if x > 0 else "\u2212") + text


def mean_std(values: list[float], decimals: int = 2) -> str:
    mean, std = _mean_std(values)
    return number(mean, decimals) if std is None else f"{number(mean, decimals)} ± {number(std, decimals)}"


def markdown_table(headers: list[str], aligns: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"

    rule = "|" + "".join("---:|" if a == "right" else "---|" for a in aligns)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)]) + "\n"


# ---------------------------------------------------------------- run folders

@dataclass
class Group:
    """Run folders of one row, by seed (config.yaml run.seed)."""

    pattern: str
    runs: dict[int, RunInfo]

    def values(self, metric: str, where: str) -> dict[int, float]:
        """metric per seed: a key of metrics.json, or of its `inference` record (val_top1, val_top1_logits:
        the validation top-1 of the test rule and of the head alone, what a screen decides with)."""
        out = {}
        for seed, run in self.runs.items():
            value = run.metrics.get(metric, (run.metrics.get("inference") or {}).get(metric))
            if not isinstance(value, (int, float)):
                raise TableError(f"{where}: {run.path / 'metrics.json'} has no '{metric}'")
            out[seed] = float(value)
        return out


@dataclass
class Sources:
    """Everything the spec names, read once: groups of runs, ensemble and zero-shot JSON files."""

    root: Path
    groups: dict[str, str] = field(default_factory=dict)
    ensembles: dict[str, str] = field(default_factory=dict)
    cache: dict = field(default_factory=dict)

    def group(self, ref: str, where: str) -> Group:
        pattern = self.groups.get(ref, ref)
        if ("g", pattern) not in self.cache:
            self.cache[("g", pattern)] = self._read_group(pattern, where)
        return self.cache[("g", pattern)]

    def _read_group(self, pattern: str, where: str) -> Group:
        if not any(c in pattern for c in "*?[") and "/" not in pattern:
            raise TableError(f"{where}: '{pattern}' is neither a group of the spec nor a run-folder glob")
        folders = sorted(p for p in self.root.glob(pattern) if (p / "metrics.json").is_file())
        if not folders:
            raise TableError(f"{where}: no run folder (with metrics.json) matches '{pattern}'")
        runs: dict[int, RunInfo] = {}
        for folder in folders:
            run = read_run(folder)
            seed = run.config.get("run.seed")
            if not isinstance(seed, int):
                raise TableError(f"{folder / 'config.yaml'}: no integer run.seed")
            if seed in runs:
                raise TableError(f"{where}: '{pattern}' matches two runs with seed {seed} "
                                 f"({self.rel(runs[seed].path)}, {self.rel(folder)}); narrow the glob")
            runs[seed] = run
        return Group(pattern, dict(sorted(runs.items())))

    def ensemble(self, name: str, where: str) -> dict:
        if name not in self.ensembles:
            raise TableError(f"{where}: no ensemble '{name}' under 'ensembles' in the spec")
        return self.json(self.ensembles[name], where)

    def json(self, rel: str, where: str):
        if ("j", rel) not in self.cache:
            path = self.root / rel
            try:
                self.cache[("j", rel)] = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise TableError(f"{where}: {rel} does not exist") from None
            except (OSError, json.JSONDecodeError) as e:
                raise TableError(f"{rel}: not readable JSON ({e})") from None
        return self.cache[("j", rel)]

    def rel(self, path: Path) -> str:
        try:  # run folders are globbed under the root: no resolve(), results/ may be a link
            return Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


# ---------------------------------------------------------------- cell templates

def render(template: str, resolve, where: str) -> tuple[str, float | None]:
    """The cell text, and its number when the template is one numeric placeholder (for `bold`)."""
    values: list[float | None] = []

    def one(m: re.Match) -> str:
        text, value = resolve(m.group(1).strip(), None if m.group(2) is None else int(m.group(2)))
        values.append(value)
        return text

    text = PLACEHOLDER.sub(one, str(template))
    whole = PLACEHOLDER.fullmatch(str(template).strip()) is not None
    return text, values[0] if whole and values else None


def inference_text(group: Group) -> str:
    """The test-time rule per seed (metrics.json: inference), one entry when every seed agrees."""
    def rule(inf: dict) -> str:
        name = inf.get("rule", "?")
        return f"fusion {float(inf.get('weight', 0))}" if name == "fusion" else str(name)

    infos = [r.metrics.get("inference") or {} for r in group.runs.values()]
    rules = [rule(i) for i in infos]
    if len(set(rules)) == 1:
        if all(i.get("chosen_on") == "fixed" for i in infos):
            method = next(iter(group.runs.values())).metrics.get("method", "")
            return f"{rules[0]} (fixed for {method.upper()})"
        return rules[0]
    return " / ".join(rules)


@dataclass
class RowContext:
    """What a placeholder of one `rows` row can name."""

    sources: Sources
    row: dict
    where: str

    def group(self) -> Group | None:
        return self.sources.group(self.row["runs"], self.where) if "runs" in self.row else None

    def resolve(self, expr: str, decimals: int | None) -> tuple[str, float | None]:
        d = 2 if decimals is None else decimals
        if expr.startswith("ens."):
            return self._ensemble(expr, decimals)
        if expr.startswith("paired.") and "paired" not in self.row:
            return "–", None  # rows without a reference (the reference itself, published rows) show a dash
        group = self.group()
        if group is None or "cite" in self.row:
            if expr in self.row and expr not in ("runs", "cells"):
                return str(self.row[expr]), None
            if "cite" in self.row:
                return "–", None  # a published row leaves what it does not state empty
            raise TableError(f"{self.where}: '{{{expr}}}' needs run folders ('runs:') or a key '{expr}' in the row")
        if expr in self.row and expr not in COMPUTED and expr != "runs":
            return str(self.row[expr]), None
        if expr == "seeds":
            return ", ".join(str(s) for s in group.runs), None
        if expr == "runs":
            return str(len(group.runs)), float(len(group.runs))
        if expr == "inference":
            return inference_text(group), None
        if expr.startswith(("paired.", "delta.")):
            return self._paired(group, expr, d)
        metric, _, seed = expr.partition("@")
        metric, _, part = metric.partition(".")
        values = group.values(metric, self.where)
        if seed:
            if int(seed) not in values:
                raise TableError(f"{self.where}: '{{{expr}}}': '{group.pattern}' has no run with seed {seed}")
            return number(values[int(seed)], d), values[int(seed)]
        mean, _ = _mean_std(list(values.values()))
        if part == "mean":
            return number(mean, d), mean
        if part:
            raise TableError(f"{self.where}: '{{{expr}}}': write {metric}, {metric}.mean or {metric}@SEED")
        return mean_std(list(values.values()), d), mean

    def _paired(self, group: Group, expr: str, d: int) -> tuple[str, float | None]:
        head, _, seed = expr.partition("@")
        parts = head.split(".")
        if parts[0] == "paired":
            metric, ref, rest = parts[1] if len(parts) > 1 else "", self.row["paired"], parts[2:]
        else:
            metric, ref, rest = (parts[1], parts[2], parts[3:]) if len(parts) > 2 else ("", "", [])
        if not metric or rest not in ([], ["seeds"]):
            raise TableError(f"{self.where}: '{{{expr}}}': write paired.METRIC[.seeds|@SEED] or "
                             "delta.METRIC.GROUP[.seeds|@SEED]")
        reference = self.sources.group(ref, self.where)
        if reference.pattern == group.pattern:
            return "–", None
        mine, theirs = group.values(metric, self.where), reference.values(metric, self.where)
        common = [s for s in mine if s in theirs]
        if not common:
            raise TableError(f"{self.where}: '{group.pattern}' and '{reference.pattern}' share no seed to pair")
        diffs = {s: mine[s] - theirs[s] for s in common}
        if seed:
            if int(seed) not in diffs:
                raise TableError(f"{self.where}: '{{{expr}}}': seed {seed} is not in both groups")
            return signed(diffs[int(seed)], d), diffs[int(seed)]
        if rest == ["seeds"]:
            return ", ".join(signed(v, d) for v in diffs.values()), None
        mean = float(np.mean(list(diffs.values())))
        return signed(mean, d), mean

    def _ensemble(self, expr: str, decimals: int | None) -> tuple[str, float | None]:
        d = 2 if decimals is None else decimals
        parts = expr.split(".")
        if len(parts) == 4 and parts[2] == "delta":
            return self._ensemble_delta(parts[1], parts[3], d)
        if len(parts) != 3 or parts[2] not in ("top1", "top5", "seeds", "weight"):
            raise TableError(f"{self.where}: '{{{expr}}}': write ens.NAME.top1|top5|seeds|weight or "
                             "ens.NAME.delta.OTHER")
        name, key = parts[1], parts[2]
        record = self.sources.ensemble(name, self.where)
        rel = self.sources.ensembles[name]
        if key in ("top1", "top5"):
            if key not in record:
                raise TableError(f"{rel}: no '{key}'")
            return number(float(record[key]), d), float(record[key])
        members = [str(r.get("run", "")) for r in record.get("runs", [])]
        if key == "seeds":
            seeds = sorted({read_run(self.sources.root / m).config.get("run.seed") for m in members}, key=str)
            return ", ".join(str(s) for s in seeds), None
        group = self.group()
        if group is None or len(group.runs) != 1:
            raise TableError(f"{self.where}: '{{{expr}}}' needs a row of exactly one run")
        mine = self.sources.rel(next(iter(group.runs.values())).path)
        weights = [r.get("weight") for r in record.get("runs", []) if str(r.get("run")).rstrip("/") == mine]
        if len(weights) != 1:
            raise TableError(f"{self.where}: {mine} is not one of the runs in {rel}")
        w = float(weights[0])
        return (f"{w:g}" if decimals is None else number(w, d)), w  # weights print as 0.4, 0.6, 0

    def _ensemble_delta(self, name: str, other: str, decimals: int) -> tuple[str, float]:
        """Top-1 of ensemble NAME minus OTHER's: like for like only when both are of the same seeds."""
        seeds = {n: self._ensemble(f"ens.{n}.seeds", None)[0] for n in (name, other)}
        if seeds[name] != seeds[other]:
            raise TableError(f"{self.where}: '{{ens.{name}.delta.{other}}}': {name} is of seeds {seeds[name]}, "
                             f"{other} of seeds {seeds[other]}; a difference needs the same seeds")
        diff = self._ensemble(f"ens.{name}.top1", None)[1] - self._ensemble(f"ens.{other}.top1", None)[1]
        return signed(diff, decimals), diff


# ---------------------------------------------------------------- table kinds

def columns_of(table: dict, where: str) -> list[dict]:
    cols = table.get("columns")
    if not isinstance(cols, list) or not cols:
        raise TableError(f"{where}: 'columns' must be a list of {{header, cell}}")
    for i, c in enumerate(cols):
        if not isinstance(c, dict) or "header" not in c or "cell" not in c:
            raise TableError(f"{where}: column {i + 1} needs 'header' and 'cell'")
        if c.get("align", "left") not in ("left", "right"):
            raise TableError(f"{where}: column {c['header']!r}: align is left or right")
        if c.get("bold") not in (None, "max", "min"):
            raise TableError(f"{where}: column {c['header']!r}: bold is max or min")
    return cols


def embolden(cells: list[list[str]], values: list[list[float | None]], cols: list[dict]) -> None:
    """**best** of a column (max or min over the rows whose cell is one computed number)."""
    for j, col in enumerate(cols):
        if not col.get("bold"):
            continue
        column = [row[j] for row in values if row[j] is not None]
        if not column:
            continue
        best = max(column) if col["bold"] == "max" else min(column)
        for i, row in enumerate(values):
            if row[j] is not None and np.isclose(row[j], best):
                cells[i][j] = f"**{cells[i][j]}**"


def cell_templates(row: dict, cols: list[dict], at: str) -> list[str]:
    """The column templates, with the row's own `cells`: a list (every column) or {header: template}
    (those columns only, so that adding a column to a table leaves such rows as they are)."""
    own = row.get("cells")
    if own is None:
        return [c["cell"] for c in cols]
    if isinstance(own, list):
        if len(own) != len(cols):
            raise TableError(f"{at}: 'cells' needs one template per column ({len(cols)}), or {{header: template}}")
        return own
    headers = [c["header"] for c in cols]
    if not isinstance(own, dict) or any(h not in headers for h in own):
        unknown = [h for h in own if h not in headers] if isinstance(own, dict) else own
        raise TableError(f"{at}: 'cells' names no column {unknown!r}; columns: {', '.join(map(repr, headers))}")
    return [own.get(c["header"], c["cell"]) for c in cols]


def unpaired(template: str, row: dict) -> bool:
    """A cell of paired differences only, in a row without a reference: one dash, not '– (–)'."""
    names = [m.group(1).strip() for m in PLACEHOLDER.finditer(str(template))]
    return "paired" not in row and bool(names) and all(n.startswith("paired.") for n in names)


def rows_table(table: dict, sources: Sources, where: str) -> str:
    cols = columns_of(table, where)
    rows = table.get("rows")
    if not isinstance(rows, list) or not rows:
        raise TableError(f"{where}: 'rows' must be a non-empty list")
    cells, values = [], []
    for i, row in enumerate(rows):
        at = f"{where} row {i + 1}"
        if not isinstance(row, dict):
            raise TableError(f"{at}: a row is a mapping (label, runs, ...)")
        if "runs" in row and not isinstance(row["runs"], str):
            raise TableError(f"{at}: 'runs' is a group name or one run-folder glob")
        if "cite" not in row:
            typed = sorted(k for k in row if k in COMPUTED and k != "runs")
            if typed:
                raise TableError(f"{at}: '{typed[0]}' is computed from the run folders; a number typed in by hand "
                                 "belongs in a published row with a 'cite'")
        templates = cell_templates(row, cols, at)
        ctx = RowContext(sources, row, at)
        rendered = [("–", None) if unpaired(t, row) else render(t, ctx.resolve, at) for t in templates]
        cells.append([t for t, _ in rendered])
        values.append([v if "cite" not in row else None for _, v in rendered])
    embolden(cells, values, cols)
    return markdown_table([c["header"] for c in cols], [c.get("align", "left") for c in cols], cells)


def per_class_table(table: dict, sources: Sources, where: str) -> str:
    """One row per class: each group's per-class top-1 (metrics.json: per_class_top1), mean over its runs."""
    groups = table.get("groups")
    if not isinstance(groups, dict) or not groups:
        raise TableError(f"{where}: 'groups' maps a column header to a group of runs")
    d = int(table.get("decimals", 1))
    means: dict[str, dict[str, float]] = {}
    for header, ref in groups.items():
        group = sources.group(str(ref), where)
        per_run = []
        for run in group.runs.values():
            if not isinstance(run.metrics.get("per_class_top1"), dict):
                raise TableError(f"{where}: {run.path / 'metrics.json'} has no 'per_class_top1'")
            per_run.append(run.metrics["per_class_top1"])
        means[header] = {c: float(np.mean([p[c] for p in per_run])) for c in per_run[0]}
    classes = list(next(iter(means.values())))
    diff = table.get("difference")
    if diff is not None and (not isinstance(diff, list) or len(diff) != 2 or any(h not in means for h in diff)):
        raise TableError(f"{where}: 'difference' is [HEADER, HEADER] of two groups")
    headers = ["class", *means] + ([f"{diff[0]} − {diff[1]}"] if diff else [])
    cells, values = [], []
    for c in classes:
        row = [c] + [number(means[h][c], d) for h in means]
        vals: list[float | None] = [None] * len(row)
        if diff:
            x = means[diff[0]][c] - means[diff[1]][c]
            row.append(signed(x, d))
            vals.append(x)
        cells.append(row)
        values.append(vals)
    cols = [{"bold": None}] * (len(headers) - 1) + [{"bold": table.get("bold")}]
    embolden(cells, values, cols)
    return markdown_table(headers, ["left"] + ["right"] * (len(headers) - 1), cells)


def log_table(table: dict, sources: Sources, where: str) -> str:
    """One row per epoch of one run's log.jsonl; placeholders name the keys of a log line."""
    from recognizer.analysis.curves import read_log

    cols = columns_of(table, where)
    run = sources.root / str(table.get("run", ""))
    if "run" not in table or not (run / "log.jsonl").is_file():
        raise TableError(f"{where}: 'run' must name a run folder with log.jsonl")
    cells = []
    for line in read_log(run):
        def resolve(expr: str, decimals: int | None, line=line) -> tuple[str, float | None]:
            if expr not in line:
                raise TableError(f"{where}: {sources.rel(run)}/log.jsonl epoch {line.get('epoch')} has no '{expr}'")
            v = line[expr]
            if isinstance(v, int) and decimals is None:
                return str(v), float(v)
            return number(float(v), 2 if decimals is None else decimals), float(v)
        cells.append([render(c["cell"], resolve, where)[0] for c in cols])
    return markdown_table([c["header"] for c in cols], [c.get("align", "left") for c in cols], cells)


def zeroshot_records(table: dict, sources: Sources, where: str) -> list[dict]:
    files = table.get("sources")
    if not isinstance(files, list) or not files:
        raise TableError(f"{where}: 'sources' lists zeroshot.json files (pcle zeroshot / zeroshot-grid --out)")
    records = []
    for rel in files:
        data = sources.json(str(rel), where)
        if not isinstance(data, list):
            raise TableError(f"{rel}: not a list of zero-shot records")
        records += data
    return records


def zeroshot_summary_table(table: dict, sources: Sources, where: str) -> str:
    """The grid's summary (mean ± std per method and text mode), as `pcle zeroshot-grid` writes it."""
    from recognizer.zeroshot.evaluate import summary_table

    records = [r for r in zeroshot_records(table, sources, where) if not r.get("parts_weight")]
    return "\n".join(summary_table(records)) + "\n"


def zeroshot_table(table: dict, sources: Sources, where: str) -> str:
    """One row per split; placeholders METHOD.TEXT.KEY (TEXT+parts: with part descriptions) name a record."""
    cols = columns_of(table, where)
    records = zeroshot_records(table, sources, where)
    by_key: dict[tuple, dict] = {}
    for r in records:
        key = (r["split"], r["method"], r["text"] + ("+parts" if r.get("parts_weight") else ""))
        if key in by_key and by_key[key] != r:
            raise TableError(f"{where}: two different records for {key} in {', '.join(map(str, table['sources']))}")
        by_key[key] = r
    splits = list(dict.fromkeys(r["split"] for r in records))
    known = {k for r in records for k in r}
    cells, values = [], []
    for split in splits:
        first = next(r for r in records if r["split"] == split)

        def resolve(expr: str, decimals: int | None, split=split, first=first) -> tuple[str, float | None]:
            if expr == "split":
                return split, None
            if expr == "unseen":
                return " + ".join(first["unseen_classes"]), None
            parts = expr.split(".")
            if len(parts) != 3:
                raise TableError(f"{where}: '{{{expr}}}': write split, unseen or METHOD.TEXT.KEY")
            record = by_key.get((split, parts[0], parts[1]))
            if record is None:
                raise TableError(f"{where}: no record for {parts[0]} text {parts[1]} on split {split}")
            if parts[2] not in known:  # a record made before a key existed shows "–"; a key none has is a typo
                raise TableError(f"{where}: '{{{expr}}}': no record has '{parts[2]}'")
            v = record.get(parts[2])
            return number(None if v is None else float(v), 1 if decimals is None else decimals), v

        rendered = [render(c["cell"], resolve, where) for c in cols]
        cells.append([t for t, _ in rendered])
        values.append([v for _, v in rendered])
    embolden(cells, values, cols)
    return markdown_table([c["header"] for c in cols], [c.get("align", "left") for c in cols], cells)


BUILDERS = {"rows": rows_table, "per-class": per_class_table, "log": log_table, "zeroshot": zeroshot_table,
            "zeroshot-summary": zeroshot_summary_table}


# ---------------------------------------------------------------- spec and Markdown regions

def load_spec(path: Path) -> dict:
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TableError(f"{path}: no table spec here") from None
    except yaml.YAMLError as e:
        raise TableError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("tables"), list):
        raise TableError(f"{path}: needs a 'tables' list")
    for key in ("groups", "ensembles"):
        if not isinstance(spec.get(key, {}), dict):
            raise TableError(f"{path}: '{key}' maps a name to a path or glob")
    names = set()
    for i, t in enumerate(spec["tables"]):
        if not isinstance(t, dict) or not t.get("name") or not t.get("file"):
            raise TableError(f"{path}: table {i + 1} needs 'name' and 'file'")
        if t["name"] in names:
            raise TableError(f"{path}: two tables named '{t['name']}'")
        names.add(t["name"])
        if t.get("kind", "rows") not in KINDS:
            raise TableError(f"{path}: table '{t['name']}': kind {t.get('kind')!r} is one of {', '.join(KINDS)}")
    return spec


def build(spec_path: Path, root: Path) -> dict[str, dict[str, str]]:
    """{markdown file: {table name: table text}} for every table of the spec."""
    spec = load_spec(spec_path)
    sources = Sources(root, {str(k): str(v) for k, v in (spec.get("groups") or {}).items()},
                      {str(k): str(v) for k, v in (spec.get("ensembles") or {}).items()})
    out: dict[str, dict[str, str]] = {}
    for t in spec["tables"]:
        where = f"{spec_path.name}: table '{t['name']}'"
        out.setdefault(str(t["file"]), {})[t["name"]] = BUILDERS[t.get("kind", "rows")](t, sources, where)
    return out


def region(name: str, table: str) -> str:
    return f"{MARKER.format(name=name)}\n\n{table}\n{END_MARKER.format(name=name)}"


def region_pattern(name: str) -> re.Pattern:
    return re.compile("^" + re.escape(MARKER.format(name=name)) + r"$.*?^" + re.escape(END_MARKER.format(name=name))
                      + "$", re.DOTALL | re.MULTILINE)


def replace_regions(text: str, tables: dict[str, str], file: str) -> str:
    """The Markdown with each named region rewritten; a missing or unknown marker is an error."""
    for name in ANY_MARKER.findall(text):
        if name not in tables:
            raise TableError(f"{file}: table '{name}' has markers but no entry in the spec")
    for name, table in tables.items():
        pattern = region_pattern(name)
        found = pattern.findall(text)
        if len(found) != 1:
            raise TableError(f"{file}: {'no' if not found else 'more than one'} region "
                             f"{MARKER.format(name=name)} ... {END_MARKER.format(name=name)}")
        text = pattern.sub(lambda _m, n=name, t=table: region(n, t), text)
    return text


def regenerate(root: Path, spec_path: Path | None = None) -> dict[str, tuple[str, str]]:
    """{file: (committed text, regenerated text)} without writing anything."""
    root = Path(root)
    spec_path = root / SPEC if spec_path is None else Path(spec_path)
    out = {}
    for file, tables in build(spec_path, root).items():
        path = root / file
        if not path.is_file():
            raise TableError(f"{file}: named in {spec_path.name} but does not exist")
        old = path.read_text(encoding="utf-8")
        out[file] = (old, replace_regions(old, tables, file))
    return out


def drifted(root: Path, spec_path: Path | None = None) -> list[str]:
    """One line per table whose committed text differs from what the run folders give."""
    lines = []
    for file, (old, new) in regenerate(root, spec_path).items():
        if old == new:
            continue
        for name in ANY_MARKER.findall(new):
            pattern = region_pattern(name)
            if pattern.search(old).group(0) != pattern.search(new).group(0):
                lines.append(f"{file}: table '{name}' differs from what its run folders give (run `make tables`)")
    return lines


def tables_command(
    check: bool = typer.Option(False, "--check", help="change nothing; exit 1 naming each table that differs"),
    root: Path = typer.Option(Path("."), help="the repository: Markdown files and run globs are relative to it"),
    spec: Path = typer.Option(None, help=f"the table spec (default ROOT/{SPEC})"),
) -> None:
    """Regenerate the result tables of README.md and docs/ from results/ (regions marked <!-- table:NAME -->)."""
    from recognizer.cli import clean_errors

    with clean_errors():
        if check:
            lines = drifted(root, spec)
            for line in lines:
                typer.echo(line)
            if lines:
                raise typer.Exit(1)
            typer.echo("every table matches its run folders")
            return
        for file, (old, new) in regenerate(root, spec).items():
            if new != old:
                atomic_write_text(Path(root) / file, new)
            typer.echo(f"{file}: {'rewritten' if new != old else 'unchanged'}")
