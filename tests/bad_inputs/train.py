"""`srpo sft` / `srpo rl` / `srpo plot` / `srpo score`: configs, TRL-side values, data, output folders, reruns."""

import json

import yaml
from PIL import Image

from bad_inputs import BadInput, Workspace
from srpo.config import SRPOGRPOConfig, config_values


def sft_data(ws: Workspace):
    """A valid SFT dataset folder (what `srpo reflect` writes) made from the workspace's problems."""
    from srpo.data import load_problems, problems_to_dataset
    from srpo.demo import pretrain_target

    problems = load_problems(ws.problems)
    ds = problems_to_dataset(problems).add_column("target", [pretrain_target(p) for p in problems])
    ds.save_to_disk(str(ws.tmp / "sft_data" / "dataset"))
    return ws.tmp / "sft_data"


def sft(ws: Workspace, *extra) -> list:
    return ["sft", "--model_name_or_path", ws.model, "--dataset", sft_data(ws), "--output_dir", ws.tmp / "out",
            "--report_to", "none", *extra]


def rl(ws: Workspace, *extra, problems=None) -> list:
    return ["rl", "--model_name_or_path", ws.model, "--dataset", problems or ws.problems, "--output_dir",
            ws.tmp / "out", "--report_to", "none", "--num_generations", "4", "--prompts_per_generation", "2",
            "--optimizer_batch_size", "8", "--per_device_train_batch_size", "8", *extra]


def rl_run_with_other_settings(ws: Workspace) -> list:
    """An output_dir that holds a run made with another learning rate (its recorded config)."""
    saved = config_values(SRPOGRPOConfig(model_name_or_path=str(ws.model), dataset=str(ws.problems),
                                         output_dir=str(ws.tmp / "out"), num_generations=4, prompts_per_generation=2,
                                         optimizer_batch_size=8, per_device_train_batch_size=8, report_to="none", learning_rate=3e-6))
    ws.write("out/config.yaml", yaml.safe_dump(saved))
    return rl(ws)


def wide_image_problem(ws: Workspace):
    Image.new("RGB", (600, 2), "white").save(ws.tmp / "wide.png")
    return ws.write("wide.jsonl", json.dumps({"id": "wide-1", "question": "What is it?", "answer": "3",
                                              "image": "wide.png"}) + "\n")


def hub_style_folder(ws: Workspace):
    """A folder in a Hugging Face dataset repository's layout (data/train-*.parquet), named as FOLDER@SPLIT."""
    import datasets

    (ws.tmp / "repo" / "data").mkdir(parents=True)
    datasets.Dataset.from_dict({"problem_text": ["How many?"], "gt": ["3"], "target": ["3"]}).to_parquet(
        str(ws.tmp / "repo" / "data" / "train-00000-of-00001.parquet"))
    return ws.tmp / "repo"


CASES = [
    BadInput("sft-unknown-config-key", lambda ws: ["sft", "--config", ws.write("c.yaml", "learning_rat: 1\n")],
             r"c\.yaml: unknown key 'learning_rat'"),
    BadInput("sft-config-not-yaml", lambda ws: ["sft", "--config", ws.write("c.yaml", "dataset: [unclosed\n")],
             r"c\.yaml: not valid YAML"),
    BadInput("sft-config-not-a-mapping", lambda ws: ["sft", "--config", ws.write("c.yaml", "- a\n- b\n")],
             r"c\.yaml: top level must be a mapping"),
    BadInput("sft-config-not-utf8", lambda ws: ["sft", "--config", ws.write("c.yaml", b"dataset: \xff\xfe\n")],
             r"c\.yaml: not UTF-8"),
    BadInput("sft-config-is-a-folder", lambda ws: ["sft", "--config", ws.tmp],
             r"config file .* is a folder"),
    BadInput("sft-ill-typed-override", lambda ws: sft(ws, "--max_steps", "1.5"),
             r"command line: argument --max_steps/--max-steps: invalid int value: '1\.5'"),
    BadInput("sft-ill-typed-yaml-value", lambda ws: ["sft", "--config", ws.write("c.yaml", "max_steps: many\n")],
             r"c\.yaml: max_steps: expected an integer, got 'many'"),
    BadInput("sft-old-key", lambda ws: ["sft", "--config", ws.write("c.yaml", "model: /m\n")],
             r"c\.yaml: 'model' is the old spelling; now write model_name_or_path"),
    BadInput("sft-no-model", lambda ws: ["sft", "--dataset", sft_data(ws), "--output_dir", ws.tmp / "out"],
             r"model_name_or_path: not set"),
    BadInput("sft-model-path-missing", lambda ws: sft(ws, "--model_name_or_path", ws.tmp / "no-such-model"),
             r"model path '.*no-such-model' does not exist"),
    BadInput("sft-dataset-missing", lambda ws: sft(ws, "--dataset", ws.tmp / "nothing"),
             r"SFT dataset .*nothing not found"),
    BadInput("sft-dataset-not-a-datasets-folder", lambda ws: sft(ws, "--dataset", ws.write("d/x.txt", "hi").parent),
             r"SFT dataset .*/d is not a folder written by datasets' save_to_disk"),
    BadInput("sft-misspelt-trl-key", lambda ws: sft(ws, "--max_grad_nrom", "1.0"),
             r"command line: unknown key '--max_grad_nrom'; did you mean max_grad_norm\?"),
    BadInput("sft-key-under-old-trainer", lambda ws: sft(ws, "--trainer.learning_rate", "1e-5"),
             r"'--trainer\.learning_rate' is the old spelling; now write TRL's keys at the top level"),
    BadInput("sft-trl-rejects-a-value", lambda ws: sft(ws, "--optim", "adamw_nope"),
             r"command line: argument --optim: invalid choice: 'adamw_nope'"),
    BadInput("sft-bad-scheduler", lambda ws: sft(ws, "--lr_scheduler_type", "cosine_annealing"),
             r"argument --lr_scheduler_type/--lr-scheduler-type: invalid choice: 'cosine_annealing' \(choose from"),
    BadInput("sft-batch-size-zero", lambda ws: sft(ws, "--per_device_train_batch_size", "0"),
             r"per_device_train_batch_size: 0 must be at least 1"),
    BadInput("sft-warmup-ratio-old-key", lambda ws: sft(ws, "--warmup_ratio", "0.5"),
             r"'--warmup_ratio' is the old spelling; now write warmup_steps"),
    BadInput("sft-negative-learning-rate", lambda ws: sft(ws, "--learning_rate=-1e-5"),
             r"learning_rate: -1e-05 must be greater than 0"),
    BadInput("sft-max-steps-zero", lambda ws: sft(ws, "--max_steps", "0"),
             r"max_steps: 0 must be a number of optimizer steps >= 1, or -1"),
    BadInput("sft-lora-rank-zero", lambda ws: sft(ws, "--use_peft", "--lora_r", "0"),
             r"lora_r: 0 must be at least 1"),
    BadInput("sft-unknown-system-prompt", lambda ws: sft(ws, "--system_prompt", "reflect"),
             r"system_prompt: 'reflect' is unknown"),
    BadInput("sft-report-to-not-installed", lambda ws: sft(ws, "--report_to", "wandb_not_here"),
             r"report_to: 'wandb_not_here' is not installed here .*pip install wandb_not_here"),
    BadInput("sft-max-length-shorter-than-prompt", lambda ws: sft(ws, "--max_length", "30"),
             r"sft_data/dataset: \d+ prompt\(s\) are longer than max_length=30 allows \(29 tokens\): syn-"),
    BadInput("sft-output-dir-is-a-file", lambda ws: sft(ws, "--output_dir", ws.write("taken", "x")),
             r"output_dir .*taken is an existing file, not a folder"),
    BadInput("sft-output-dir-not-writable", lambda ws: sft(ws, "--output_dir", "/proc/1/srpo-out"),
             r"output_dir /proc/1/srpo-out: /proc/1 is not writable"),
    BadInput("sft-4bit-without-lora", lambda ws: sft(ws, "--load_in_4bit"),
             r"load_in_4bit: true is QLoRA"),
    BadInput("sft-unknown-attention", lambda ws: sft(ws, "--attn_implementation", "flash"),
             r"attn_implementation: 'flash' is unknown"),
    BadInput("rl-num-generations-1", lambda ws: rl(ws, "--num_generations", "1"),
             r"num_generations: 1 must be at least 2"),
    BadInput("rl-save-steps-zero", lambda ws: rl(ws, "--save_steps", "0"),
             r"save_steps: 0\.0 must be greater than 0"),
    BadInput("rl-unknown-preset", lambda ws: rl(ws, "--preset", "srpo"),
             r"preset: 'srpo' is unknown; use one of"),
    BadInput("rl-zero-temperature", lambda ws: rl(ws, "--temperature", "0"),
             r"temperature: 0\.0 must be greater than 0"),
    BadInput("rl-filter-band-upside-down", lambda ws: rl(ws, "--group_accuracy_filter", "0.9", "0.1"),
             r"group_accuracy_filter: \[0\.9, 0\.1\] must be \[low, high\]"),
    BadInput("rl-batch-does-not-divide", lambda ws: rl(ws, "--per_device_train_batch_size", "3"),
             r"prompts_per_generation x num_generations = 8 must be a multiple of per_device_train_batch_size"),
    BadInput("rl-unknown-loss-type", lambda ws: rl(ws, "--loss_type", "ppo"),
             r"loss_type: 'ppo' is unknown; use one of"),
    BadInput("rl-min-lr-rate-old-key", lambda ws: rl(ws, "--min_lr_rate", "0.1"),
             r"'--min_lr_rate' is the old spelling; now write lr_scheduler_kwargs: \{min_lr_rate: 0\.1\}"),
    BadInput("rl-scheduler-kwargs-not-json", lambda ws: rl(ws, "--lr_scheduler_kwargs", "min_lr_rate=0.1"),
             r"lr_scheduler_kwargs: 'min_lr_rate=0\.1' is not a JSON object"),
    BadInput("rl-max-prompt-length-shorter-than-prompt", lambda ws: rl(ws, "--max_prompt_length", "20"),
             r"problems\.jsonl: \d+ prompt\(s\) are longer than max_prompt_length=20 allows \(20 tokens\): syn-"),
    BadInput("rl-image-the-processor-refuses", lambda ws: rl(ws, problems=wide_image_problem(ws)),
             r"wide\.jsonl: images: the model's image processor refuses the images of 1 item\(s\): 'wide-1' "
             r"\(image 0, 600x2 px"),
    BadInput("rl-changed-setting-on-an-existing-run", rl_run_with_other_settings,
             r"out holds a run made with other settings \(learning_rate: 3e-06 -> 1e-06\)\. Use a new output_dir, "
             r".*--overwrite"),
    BadInput("rl-dataset-missing", lambda ws: rl(ws, problems=ws.tmp / "none.jsonl"),
             r"none\.jsonl: no such file or folder"),
    BadInput("rl-empty-dataset", lambda ws: rl(ws, problems=ws.write("e.jsonl", "\n")),
             r"e\.jsonl: no usable problems left to train on"),
    BadInput("rl-dataset-column-not-found", lambda ws: rl(ws, "--dataset_columns", '{"question": "question_text"}',
                                                          problems=f"{hub_style_folder(ws)}@train"),
             r"repo@train: column 'question_text' \(for question\) not found; the columns are problem_text, gt, "
             r"target: fix the column mapping"),
    BadInput("rl-dataset-unknown-split", lambda ws: rl(ws, problems=f"{hub_style_folder(ws)}@test"),
             r"repo@test: datasets\.load_dataset cannot load it \(ValueError: Unknown split \"test\"\. Should be one "
             r"of \['train'\]\.\); check the dataset id or folder and the split name"),
    BadInput("sft-dataset-column-not-found", lambda ws: sft(ws, "--dataset", f"{hub_style_folder(ws)}@train",
                                                            "--dataset_columns", '{"images": "pics"}'),
             r"repo@train: column 'pics' \(for images\) not found; the columns are problem_text, gt, target"),
    BadInput("plot-not-a-run", lambda ws: ["plot", ws.tmp],
             r"no checkpoint-\*/trainer_state\.json"),
    BadInput("plot-out-is-a-file", lambda ws: ["plot", ws.tmp, "--out", ws.write("p.png", "x")],
             r"--out .*p\.png is an existing file, not a folder"),
    BadInput("score-empty-reference", lambda ws: ["score", "<answer>3</answer>", ""],
             r"SOLUTION: the reference answer is empty"),
    BadInput("cli-missing-required-argument", lambda ws: ["eval", "score", "--benchmark", "mathvista"],
             r"eval score: Missing option '--outputs'"),
    BadInput("cli-unknown-flag-for-a-typer-command", lambda ws: ["synth", ws.tmp / "s", "--n-trian", "3"],
             r"synth: No such option: --n-trian"),
]
