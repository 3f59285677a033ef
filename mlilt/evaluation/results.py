"""Result files of ``mlilt eval``: the mean of averaged protocols, merging with an earlier result, writing, printing.

    >>> from mlilt.evaluation.results import format_table, merge_previous, write_result
    >>> result = merge_previous(result, "runs/x/eval/xtd10_1k.json")   # keeps languages scored earlier
    >>> write_result(result, "runs/x/eval/xtd10_1k.json"); print(format_table(result))
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

from mlilt.evaluation import gallery

# More languages than this and `mlilt eval` adds a summary per resource tier (as `mlilt report` does).
TIER_SUMMARY_FROM = 20


def _mean_table(tables: list[dict]) -> dict:
    """Per language and metric, the mean over ``tables`` (each ``{lang: {metric: value}}``)."""
    return {lang: {key: sum(t[lang][key] for t in tables) / len(tables) for key in metrics}
            for lang, metrics in tables[0].items()}


def average_results(protocol: str, parts: dict[str, dict]) -> dict:
    """One result for ``protocol`` whose recalls and text probe are the mean of ``parts``' results.

    The parts' own numbers stay under ``protocols`` (per style, for emoji-XTD), so a report can show
    either; ``results`` keeps the shape every reader of result files expects.
    """
    done = list(parts.values())
    first = done[0]
    leaks = [r.get("leakage") or {} for r in done]
    overlaps = [leak.get("overlap") for leak in leaks]
    out = dict(first)
    out.update({
        "protocol": protocol, "averaged_over": list(parts), "num_images": sum(r["num_images"] for r in done),
        "results": _mean_table([r["results"] for r in done]),
        "counts": {lang: {k: sum(r["counts"][lang].get(k, 0) for r in done)
                          for k in dict.fromkeys(k for r in done for k in r["counts"][lang])}
                   for lang in first["counts"]},
        "leakage": {**leaks[0], "overlap": None if None in overlaps else sum(overlaps),
                    "excluded": any(leak.get("excluded") for leak in leaks),
                    "excluded_count": sum(leak.get("excluded_count", 0) for leak in leaks)},
        "timings": {k: round(sum(r["timings"][k] for r in done), 3) for k in first["timings"]},
        "cache": {"images": ", ".join(f"{name} {r['cache'].get('images')}" for name, r in parts.items()),
                  "texts": {name: r["cache"].get("texts") for name, r in parts.items()}},
        "notes": list(dict.fromkeys(n for r in done for n in r.get("notes", []))),
        "protocols": {name: {k: r[k] for k in ("num_images", "pool", "results", "counts", "text_probe", "leakage")
                             if k in r} for name, r in parts.items()},
    })
    if all("pool" in r for r in done):
        out["pool"] = {"kind": first["pool"]["kind"], "images": sum(r["pool"]["images"] for r in done)}
    if all("languages" in r for r in done):
        out["languages"] = {lang: {**facts, "images": sum(r["languages"][lang]["images"] for r in done)}
                            for lang, facts in first["languages"].items()}
    if all(r.get("text_probe") for r in done):
        out["text_probe"] = _mean_table([r["text_probe"] for r in done])
    return out


def merge_previous(result: dict, path: str | os.PathLike) -> dict:
    """Keep the languages of an earlier result at ``path`` that this run did not score.

    Only when it scored the same model (``model_key``) on the same images with the same exclusion;
    otherwise the new result replaces it. So ``--langs sw`` adds a row instead of dropping the others,
    and every table of the merged result lists its languages in the set's order.
    """
    path = Path(path)
    if not path.is_file():
        return result
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return result
    same = all(old.get(k) == result.get(k) for k in ("task", "model_key", "eval_set", "protocol", "num_images")) \
        and (old.get("leakage") or {}).get("excluded") == (result.get("leakage") or {}).get("excluded") \
        and (old.get("pool") or {}).get("kind", "shared") == (result.get("pool") or {}).get("kind", "shared")
    kept = [lang for lang in old.get("results", {}) if lang not in result["results"]] if same else []
    if not kept:
        return result
    order = _language_order(result, old)

    def merged_table(new: dict | None, earlier: dict | None) -> dict:
        table = {**{k: v for k, v in (earlier or {}).items() if k in kept}, **(new or {})}
        return {k: table[k] for k in sorted(table, key=order)}

    merged = dict(result)
    for part in ("results", "counts", "text_probe", "languages"):
        if part in old or part in result:
            merged[part] = merged_table(result.get(part), old.get(part))
    if "gallery" in old and "gallery" in result:
        merged["gallery"] = gallery.merge(old["gallery"], result["gallery"], kept)
    if "protocols" in result:  # the per-style results keep their earlier languages too
        merged["protocols"] = {
            name: {**part, **{field: merged_table(part.get(field), (old.get("protocols") or {}).get(name, {}).get(field))
                              for field in ("results", "counts", "text_probe") if field in part}}
            for name, part in result["protocols"].items()}
    merged["notes"] = list(result.get("notes", [])) + [
        f"kept from the earlier result ({old.get('created')}): {', '.join(kept)}"]
    return merged


def _language_order(result: dict, old: dict) -> Callable[[str], tuple[int, int]]:
    """Sort key of a language: its place in the set (as the new result recorded it), else in the old result."""
    in_set = {lang: i for i, lang in enumerate((result.get("eval_set_info") or {}).get("language_order") or [])}
    earlier = {lang: i for i, lang in enumerate([*old.get("results", {}), *result.get("results", {})])}
    return lambda lang: (in_set.get(lang, len(in_set)), earlier.get(lang, 0))


def write_result(result: dict, path: str | os.PathLike) -> Path:
    """Write a result dict as indented JSON (atomically)."""
    from mlilt.model import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2, ensure_ascii=False) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)  # a result is meant to be shared; the temporary file was private (0600)
    return path


def format_table(result: dict) -> str:
    """A compact text table of a retrieval result: one row per language."""
    run = result["run"]
    head = (f"{result['eval_set']} / {result['protocol']}: {result['num_images']} images   "
            f"model: {run.get('name')} ({run.get('strategy')}, {run.get('percent_trainable', 0):.2f}% trained)")
    leak = result.get("leakage") or {}
    if leak.get("overlap") is not None:
        head += f"\ntraining overlap: {leak['overlap']} images" + (" (excluded)" if leak.get("excluded") else "")
    probe = result.get("text_probe") or {}
    columns = ["TR@1", "TR@5", "TR@10", "IR@1", "IR@5", "IR@10", "mean"]
    pool = result.get("pool") or {}
    if pool.get("kind") == "shared" and pool.get("images") != result["num_images"]:
        head += f"\nshared pool: {pool['images']} images with a caption in every language (--pool own: each its own)"
    names = {lang: facts.get("name") or "" for lang, facts in (result.get("languages") or {}).items()}
    width = max([6] + [len(lang) + 1 for lang in result["results"]])
    name_width = max([0] + [min(len(n), 18) + 2 for n in names.values()])
    lines = [head, f"{'lang':<{width}}{'':<{name_width}}" + "".join(f"{c:>7}" for c in columns)
             + ("   en->x@1 x->en@1" if probe else "")]
    for lang, scores in result["results"].items():
        row = f"{lang:<{width}}{names.get(lang, '')[:18]:<{name_width}}" + "".join(f"{scores[c]:>7.1f}" for c in columns)
        if probe:
            p = probe.get(lang)
            row += f"   {p['en->x@1']:>7.1f} {p['x->en@1']:>7.1f}" if p else f"   {'-':>7} {'-':>7}"
        lines.append(row)
    if len(result["results"]) > 1:
        avg = {c: sum(s[c] for s in result["results"].values()) / len(result["results"]) for c in columns}
        lines.append(f"{'avg':<{width + name_width}}" + "".join(f"{avg[c]:>7.1f}" for c in columns))
    lines += _protocols_table(result)
    lines += _tier_summary(result, width)
    t = result.get("timings") or {}
    lines.append(f"image encoding {t.get('image_encoding_s', 0):.1f} s ({result.get('cache', {}).get('images')}), "
                 f"text encoding {t.get('text_encoding_s', 0):.1f} s")
    lines += [f"note: {n}" for n in result.get("notes", [])]
    return "\n".join(lines)


def _tier_summary(result: dict, width: int) -> list[str]:
    """Mean recall and text probe per Joshi et al. (2020) resource tier, for results in many languages."""
    facts = result.get("languages") or {}
    if len(result["results"]) <= TIER_SUMMARY_FROM or not any(f.get("tier") is not None for f in facts.values()):
        return []
    probe = result.get("text_probe") or {}
    tiers: dict = {}
    for lang in result["results"]:
        tiers.setdefault((facts.get(lang) or {}).get("tier"), []).append(lang)
    lines = ["per resource tier (Joshi et al. 2020; 5 = most resourced):",
             f"{'tier':<{width}}{'langs':>7}{'mean':>7}   en->x@1"]
    for tier in sorted(tiers, key=lambda t: -1 if t is None else t, reverse=True):
        langs = tiers[tier]
        mean = sum(result["results"][lang]["mean"] for lang in langs) / len(langs)
        probed = [probe[lang]["en->x@1"] for lang in langs if lang in probe]
        lines.append(f"{'?' if tier is None else tier!s:<{width}}{len(langs):>7}{mean:>7.1f}"
                     + (f"   {sum(probed) / len(probed):>7.1f}" if probed else f"   {'-':>7}"))
    return lines


def _protocols_table(result: dict) -> list[str]:
    """Mean recall per language in each averaged protocol (emoji-XTD's styles), beside their mean."""
    parts = result.get("protocols")
    if not parts:
        return []
    names = list(parts) + [result["protocol"]]
    tables = {**{name: part["results"] for name, part in parts.items()}, result["protocol"]: result["results"]}
    width = max(9, *(len(n) + 2 for n in names))
    langs = list(result["results"])
    tag_width = max(6, *(len(lang) + 1 for lang in langs))
    lines = [f"mean recall per {'/'.join(parts)} (the table above is their mean, '{result['protocol']}')",
             f"{'lang':<{tag_width}}" + "".join(f"{n:>{width}}" for n in names)]
    for lang in langs:
        lines.append(f"{lang:<{tag_width}}" + "".join(f"{tables[n][lang]['mean']:>{width}.1f}" for n in names))
    if len(langs) > 1:
        lines.append(f"{'avg':<{tag_width}}" + "".join(
            f"{sum(tables[n][lang]['mean'] for lang in langs) / len(langs):>{width}.1f}" for n in names))
    return lines
