"""The model card (``README.md``) written beside merged weights: what the model is, how it was made, how it
scored, and whose terms apply, in the Hugging Face Hub's format (YAML metadata, then Markdown)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mellm_core.config import Recipe
from mellm_core.errors import MellmError
from mellm_core.files.layout import SUMMARY, TRAIN_LOG, RunLayout
from mellm_core.files.storage import Location
from mellm_core.model.adapters import trained_adapter
from mellm_core.plugins import get_registry
from mellm_core.summaries import EvalResult, InstructionsSummary, TrainSummary
from mellm_core.text.turns import takes_text

METRICS = ("acc", "uf1", "uar", "au_f1")
LANDMARK_TERMS = ("The maps were made with dlib's 68-point landmark model (`landmarker: dlib68`), trained on the "
                  "iBUG 300-W dataset, whose licence excludes commercial use; the maps this model needs as input are "
                  "made with it too unless you swap the landmarker (`maps.landmarker`).")


@dataclass(frozen=True)
class Kind:
    """What differs between the card of a model that reads MMC-maps and one that reads the flow as text."""

    pipeline: str
    tags: str
    input: str
    same_settings: str
    use: tuple[str, ...]  # the usage snippet's lines, ``{folder}`` standing for the merged folder as a literal
    loading: str  # what the snippet needs beyond transformers, and the way without it ("" when nothing)


KINDS = {
    False: Kind("image-text-to-text", "mmc-map, qwen2.5-vl",
                "MMC-maps (the optical flow from a micro-expression's onset to its apex frame, drawn over the "
                "grayscale onset frame)",
                "make the maps you ask it about with the same settings (`mellm map --recipe RECIPE`)",
                ("from transformers import AutoModelForImageTextToText, AutoProcessor", "",
                 "model = AutoModelForImageTextToText.from_pretrained({folder}, dtype=\"auto\")",
                 "processor = AutoProcessor.from_pretrained({folder})  # needs torchvision: see below"),
                "`AutoProcessor` bundles the image processor, the tokenizer and its chat template, and also builds "
                "Qwen2.5-VL's video processor, which needs torchvision: install the torchvision build that matches "
                "your torch (https://pytorch.org/get-started/locally/) to use it. Without torchvision, load the "
                "parts with `AutoTokenizer` (chat template included) and `AutoImageProcessor`, as `mellm` does, and "
                "repeat the prompt's `<|image_pad|>` once per merged patch (the image's `image_grid_thw` product "
                "over `merge_size`²), with `mm_token_type_ids` 1 on those tokens."),
    True: Kind("text-generation", "flow-text, qwen2.5",
               "the flow as text (each facial region's motion from a micro-expression's onset to its apex frame, "
               "head motion removed, one line a region)",
               "describe the flow you ask it about with the same settings and prompt (`mellm maps RECIPE` records "
               "each clip's regions' motion in `maps/manifest.jsonl`, and the recipe's prompt words it)",
               ("from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                "model = AutoModelForCausalLM.from_pretrained({folder}, dtype=\"auto\")",
                "tokenizer = AutoTokenizer.from_pretrained({folder})  # with its chat template"), ""),
}


def training_facts(recipe: Recipe, adapter: str) -> list[str]:
    """The card's lines on how ``adapter`` was trained, from the run's ``train/summary.json`` (what ran, where
    the recipe only says what a run would do); the recipe's optimizer settings only when the run's settings
    digest is still the recipe's, and a plain "not recorded" when no summary describes this adapter."""
    from mellm_core.model.training import plan

    layout = RunLayout(recipe.output_dir)
    published = trained_adapter(recipe.output_dir)
    if published is None or not (layout.train / SUMMARY).is_file():
        return [f"- **Training**: not recorded: there is no `train/summary.json` under `{recipe.output_dir}` "
                "(`mellm train` writes one beside the adapter it publishes), so how this adapter was trained is "
                "unknown"]
    if Location(adapter).resolve() != Location(published).resolve():
        return [f"- **Training**: not recorded: the adapter merged is not the one `mellm train` published under "
                f"`{recipe.output_dir}` (`{published}`), which that run's `train/summary.json` describes"]
    run = TrainSummary.read(layout.train / SUMMARY, skipped=False)
    train = recipe.train
    try:
        same = plan(recipe).digest == run.settings_hash
    except MellmError:  # no instructions to digest: nothing to check the recipe against
        same = False
    resumed = f" (resumed at step {run.start_step})" if run.start_step else ""
    workers = f"{run.workers} worker{'s' if run.workers != 1 else ''}" + (" on Ray Train" if run.ray else "")
    loss = f", final loss {run.final_loss}" if run.final_loss is not None else ""
    if same:
        settings = (f"{train.batch_size} samples a step, AdamW lr {train.lr} on a cosine schedule"
                    + (f" after {train.warmup_steps} warm-up steps" if train.warmup_steps else "")
                    + (f" (scaled {json.dumps(train.lr_scales)})" if train.lr_scales else "")
                    + f", weight decay {train.weight_decay}, seed {recipe.seed}")
    else:
        settings = ("the recipe given to `mellm export`, with the instructions in its output_dir, does not give "
                    "the run's settings digest (`train/summary.json`), so the learning rate, batch and seed are not "
                    "quoted")
    lines = [f"- **Training**: {run.end_step} steps{resumed} on {workers}{loss}; {settings}"]
    held = f"on {len(run.val_subjects)} held-out training subject{'s' if len(run.val_subjects) != 1 else ''}"
    if run.kept:
        figures = ", ".join(f"{k} {v}" for k, v in run.kept.items() if k != "step")
        lines.append(f"- **Adapter kept**: step {run.kept['step']} of {run.end_step}, the best validation "
                     f"({figures}) {held} (`train.keep: best_val`)")
    elif run.val_subjects and (layout.train / TRAIN_LOG).is_file():
        logged = [json.loads(x) for x in (layout.train / TRAIN_LOG).read_text().splitlines() if x.strip()]
        last = [x for x in logged if x["step"] == run.end_step and "val_loss" in x]
        if last:
            figures = ", ".join(f"{k} {v}" for k, v in last[0].items() if k.startswith("val_"))
            lines.append(f"- **Validation** at step {run.end_step}, the adapter's: {figures} {held}")
    return lines


def decoding(generation: dict) -> str:
    """The card's sentence on ``generation_config.json``, whose settings servers apply unasked (vLLM by default)."""
    cap = generation.get("max_new_tokens")
    return ("`generation_config.json` holds the decoding `mellm` uses: greedy, no sampling or repetition penalty"
            + (f", at most {cap} new tokens" if cap else "") + ". transformers' `generate` applies it as it is; vLLM "
            "takes its lack of penalties and its length cap as defaults but reads no `do_sample`, so send "
            "`temperature: 0` (the `openai-compatible` backbone does).")


def model_card(recipe: Recipe, adapter: str, lora: dict, dtype: str, folder: Path,
               generation: dict | None = None) -> str:
    """The card of ``recipe``'s model with ``adapter`` (its ``adapter_config.json``: ``lora``) merged into
    ``folder``, weights saved in ``dtype``, decoding as ``generation`` (its ``generation_config.json``) says.

    ``license: other``: the weights carry the base model's licence and the training data's terms together (the
    Licences section lists them), which no single licence id names."""
    layout = RunLayout(recipe.output_dir)
    base = recipe.backbone.model
    is_hub_id = not Path(base).expanduser().exists() and base.count("/") == 1
    maps, ins = recipe.maps, recipe.instructions
    params = recipe.backbone.params
    text = takes_text(get_registry().create("prompt", recipe.instructions.prompt, **recipe.instructions.prompt_params))
    kind = KINDS[text]
    front = ["---", "license: other", f"base_model: {base}" if is_hub_id else None, "library_name: transformers",
             f"pipeline_tag: {kind.pipeline}", f"tags: [micro-expression, mellm, {kind.tags}, lora]", "---"]
    lm = params.get("lm_targets", "q/k/v/o, gate/up/down")
    lines = [x for x in front if x] + [
        "", f"# {Path(str(recipe.output_dir)).name}: micro-expression understanding (MELLM)", "",
        f"{base} fine-tuned with LoRA by `mellm` on {kind.input} and FGMU instructions; the adapter is merged into "
        f"the weights, saved in {dtype}.", "",
        "## How it was made", "",
        f"- **Base model**: `{base}`",
        f"- **Adapter**: `{adapter}`: LoRA rank {lora.get('r')}, alpha {lora.get('lora_alpha')}, dropout "
        f"{lora.get('lora_dropout')}, in the LM projections {lm}"
        + ("" if text else f" and the vision projections {params.get('vision_targets', 'qkv, proj, gate/up/down')}")
        + ("; every base weight trained too" if params.get("train_base") else ""),
        *training_facts(recipe, adapter),
        f"- **Data**: dataset `{recipe.data.dataset}`, protocol `{ins.protocol}`, prompt `{ins.prompt}`"
        f"{' ' + json.dumps(ins.prompt_params) if ins.prompt_params else ''}, split `{ins.split.kind}`",
        f"- **Input maps**: flow `{maps.flow}`, landmarker `{maps.landmarker}`, head motion `{maps.head_motion}`, "
        f"colorizer `{maps.colorizer}` {json.dumps(maps.colorizer_params) if maps.colorizer_params else ''}: "
        f"{kind.same_settings}",
    ]
    if layout.instructions_summary.is_file():
        s = InstructionsSummary.read(layout.instructions_summary)
        lines.append(f"- **Instructions**: {s.train.instructions} for training from {s.train.samples} clips of "
                     f"{len(s.train_subjects)} subjects, {s.test.instructions} held out from {len(s.test_subjects)}; "
                     f"classes: {', '.join(s.labels)}")
    lines += ["", "## Evaluation", ""]
    if layout.metrics.is_file():
        result = EvalResult.read(layout.metrics)
        lines += [f"On the held-out test set, protocol `{result.protocol}`:", "",
                  "| task | n | " + " | ".join(m.upper().replace("_", " ") for m in METRICS) + " |",
                  "|---|---|" + "---|" * len(METRICS)]
        for task, metrics in result.tasks.items():
            cells = [f"{metrics.overall[m]:.3f}" if isinstance(metrics.overall.get(m), float) else "–"
                     for m in METRICS]
            lines.append(f"| {task} | {metrics.overall.get('n', '–')} | " + " | ".join(cells) + " |")
    else:
        lines.append("Not evaluated yet (`mellm eval` writes `eval/metrics.json`, which the card quotes).")
    literal = json.dumps(str(folder))
    lines += [
        "", "## Use", "", "```python",
        *(line.format(folder=literal) for line in kind.use),
        "```", "",
        *([kind.loading, ""] if kind.loading else []),
        *([decoding(generation), ""] if generation else []),
        "Or through `mellm`: set `backbone.model` to this folder, or serve it with vLLM and reach it through the "
        "`openai-compatible` backbone (docs/serving.md).", "",
        "## Licences", "",
        "These terms apply together, hence `license: other` above:", "",
        f"- The base model's licence applies to these weights (see the model card of `{base}`).",
        "- The training data's terms apply: CASME II, CAS(ME)³, SAMM, SMIC and DFME are released under their "
        "owners' agreements; SynthME is made by `mellm` from two public-domain photos.",
    ]
    if maps.landmarker == "dlib68":
        lines.append(f"- {LANDMARK_TERMS}")
    return "\n".join(lines) + "\n"
