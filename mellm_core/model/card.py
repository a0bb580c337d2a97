"""The model card (``README.md``) written beside merged weights: what the model is, how it was made, how it
scored, and whose terms apply, in the Hugging Face Hub's format (YAML metadata, then Markdown)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mellm_core.config import Recipe
from mellm_core.files.layout import RunLayout
from mellm_core.plugins import get_registry
from mellm_core.summaries import EvalResult, InstructionsSummary
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
    use: tuple[str, ...]


KINDS = {
    False: Kind("image-text-to-text", "mmc-map, qwen2.5-vl",
                "MMC-maps (the optical flow from a micro-expression's onset to its apex frame, drawn over the "
                "grayscale onset frame)",
                "make the maps you ask it about with the same settings (`mellm map --recipe RECIPE`)",
                ("from transformers import AutoModelForImageTextToText, AutoProcessor",
                 'model = AutoModelForImageTextToText.from_pretrained("PATH", dtype="auto")',
                 'processor = AutoProcessor.from_pretrained("PATH")  # image processor, tokenizer and chat template')),
    True: Kind("text-generation", "flow-text, qwen2.5",
               "the flow as text (each facial region's motion from a micro-expression's onset to its apex frame, "
               "head motion removed, one line a region)",
               "describe the flow you ask it about with the same settings and prompt (`mellm maps RECIPE` records "
               "each clip's regions' motion in `maps/manifest.jsonl`, and the recipe's prompt words it)",
               ("from transformers import AutoModelForCausalLM, AutoTokenizer",
                'model = AutoModelForCausalLM.from_pretrained("PATH", dtype="auto")',
                'tokenizer = AutoTokenizer.from_pretrained("PATH")  # with its chat template')),
}


def model_card(recipe: Recipe, adapter: str, lora: dict, dtype: str) -> str:
    """The card of ``recipe``'s model with ``adapter`` (its ``adapter_config.json``: ``lora``) merged, weights
    saved in ``dtype``."""
    layout = RunLayout(recipe.output_dir)
    base = recipe.backbone.model
    is_hub_id = not Path(base).expanduser().exists() and base.count("/") == 1
    train, maps, ins = recipe.train, recipe.maps, recipe.instructions
    params = recipe.backbone.params
    text = takes_text(get_registry().create("prompt", recipe.instructions.prompt, **recipe.instructions.prompt_params))
    kind = KINDS[text]
    front = ["---", f"base_model: {base}" if is_hub_id else None, "library_name: transformers",
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
        f"- **Training**: {train.max_steps} steps of {train.batch_size} samples, AdamW lr {train.lr}, weight decay "
        f"{train.weight_decay}, seed {recipe.seed}",
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
    lines += [
        "", "## Use", "", "```python",
        *kind.use,
        "```", "",
        "Or through `mellm`: set `backbone.model` to this folder, or serve it with vLLM and reach it through the "
        "`openai-compatible` backbone (docs/serving.md).", "",
        "## Licences", "",
        f"- The base model's licence applies to these weights (see the model card of `{base}`).",
        "- The training data's terms apply: CASME II, CAS(ME)³, SAMM, SMIC and DFME are released under their "
        "owners' agreements; SynthME is made by `mellm` from two public-domain photos.",
    ]
    if maps.landmarker == "dlib68":
        lines.append(f"- {LANDMARK_TERMS}")
    return "\n".join(lines) + "\n"
