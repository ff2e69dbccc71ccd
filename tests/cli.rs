//! The `rlhf` command line: JSON output contracts and clear errors.

use std::process::Command;

use serde_json::Value;

fn rlhf(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rlhf")).args(args).output().expect("run rlhf");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn logprobs_json_matches_transformers() {
    let dir = fixture("qwen2");
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(format!("{dir}/expected.json")).unwrap()).unwrap();
    let text = expected["texts"][0].as_str().unwrap();
    let (ok, stdout, stderr) = rlhf(&["logprobs", "--model", &dir, "--text", text, "--json"]);
    assert!(ok, "{stderr}");
    let got: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(got["ids"], expected["ids"][0]);
    let (got, want) = (got["logprobs"].as_array().unwrap(), expected["logprobs"][0].as_array().unwrap());
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!((g.as_f64().unwrap() - w.as_f64().unwrap()).abs() <= 1e-4, "{g} vs {w}");
    }
}

#[test]
fn generate_json_gives_new_ids_and_text() {
    let dir = fixture("gpt2");
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(format!("{dir}/expected.json")).unwrap()).unwrap();
    let ids: Vec<String> = expected["ids"][1].as_array().unwrap().iter().map(|v| v.to_string()).collect();
    let (ok, stdout, stderr) = rlhf(&["generate", "--model", &dir, "--ids", &ids.join(","), "--max-new-tokens", "16", "--greedy", "--json"]);
    assert!(ok, "{stderr}");
    let got: Value = serde_json::from_str(&stdout).unwrap();
    // The fixture's EOS is id 0; transformers' reference continuation never produces it.
    assert_eq!(got["new_ids"], expected["greedy"][1]);
    assert!(got["text"].is_string());
}

#[test]
fn bad_input_gives_a_clear_error() {
    let (ok, _, stderr) = rlhf(&["logprobs", "--model", "/nonexistent-model-dir", "--ids", "1,2"]);
    assert!(!ok && stderr.contains("/nonexistent-model-dir/config.json"), "{stderr}");
    let (ok, _, stderr) = rlhf(&["logprobs", "--model", &fixture("gpt2"), "--ids", "1,2000"]);
    assert!(!ok && stderr.contains("2000"), "{stderr}");
    let (ok, _, stderr) = rlhf(&["generate", "--model", &fixture("llama"), "--ids", "1", "--max-new-tokens", "3", "--temperature", "0"]);
    assert!(!ok && stderr.contains("temperature"), "{stderr}");
}

/// `rlhf kernels test --json`: the summary agrees with the per-kernel rows and every kernel
/// passes. The text form ends with the same counts, alone on the last line.
#[test]
fn kernels_test_checks_every_kernel_against_the_cpu() {
    let (ok, stdout, stderr) = rlhf(&["kernels", "test", "--sanitize", "--json"]);
    let got: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    let kernels = got["kernels"].as_array().unwrap();
    let passed = kernels.iter().filter(|k| k["passed"] == true).count();
    let failed = kernels.len() - passed;
    assert_eq!((got["passed"].as_u64(), got["failed"].as_u64()), (Some(passed as u64), Some(failed as u64)));
    assert!(ok && failed == 0, "{stderr}");
    for k in kernels {
        assert!(k["passed"] == true && k["shape"].is_string() && k["max_abs_err"].is_number(), "{k}");
    }
    let names: Vec<&str> = kernels.iter().map(|k| k["name"].as_str().unwrap()).collect();
    for name in ["layernorm_bwd_bf16", "cross_entropy_fwd_f32", "elementwise_fwd_axpy_bf16", "swiglu_bwd_f32"] {
        assert!(names.contains(&name), "{name} missing");
    }
    assert!(kernels.iter().any(|k| k["shape"] == "[64, 50257]"));

    let (_, text, _) = rlhf(&["kernels", "test"]);
    assert_eq!(text.lines().last(), Some(format!("{passed} passed, {failed} failed").as_str()));
}

#[test]
fn kernels_test_without_cuda_tools_says_how_to_install_them() {
    let out = Command::new(env!("CARGO_BIN_EXE_rlhf"))
        .args(["kernels", "test"])
        .env("RLHF_CUDA_TOOLS", "/nonexistent-cuda-tools")
        .output()
        .expect("run rlhf");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("RLHF_CUDA_TOOLS") && stderr.contains("scripts/setup-cuda-tools.sh"), "{stderr}");
}

/// The main job end to end in its quick form: the files it promises, the summary's fields, a
/// reward model well above chance, and PPO and GRPO both clearly above the SFT policy on held-out
/// prompts.
#[test]
fn quick_demo_improves_on_sft_and_writes_its_reports() {
    let out = std::env::temp_dir().join(format!("rlhf-demo-test-{}", std::process::id()));
    let (ok, stdout, stderr) = rlhf(&["demo", "--quick", "--out", out.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("PPO") && stdout.contains("GRPO"), "{stdout}");
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["task"], "arith");
    let gold = |k: &str| summary[k]["gold"].as_f64().unwrap();
    assert!(gold("ppo") >= gold("sft") + 0.15, "{summary}");
    assert!(gold("grpo") >= gold("sft") + 0.15, "{summary}");
    assert!(summary["ppo"]["kl"].as_f64().unwrap() > 0.0, "{summary}");
    // The fields, and which reward each stage used.
    for (stage, field) in [("sft", "gold"), ("best_of_n", "gold"), ("ppo", "kl"), ("grpo", "gold"), ("grpo", "kl")] {
        let value = summary[stage][field].as_f64().unwrap_or(f64::NAN);
        assert!(value.is_finite() && value >= 0.0, "{stage}.{field} in {summary}");
    }
    assert!(summary["seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(summary["rewards_used"]["best_of_n"], "reward_model", "{summary}");
    assert_eq!(summary["rewards_used"]["ppo"], "gold", "{summary}");
    assert_eq!(summary["reward_model"]["trained_on"], "raw", "the quick run trains no ensemble: {summary}");
    // A reward model trained on labels of which a quarter are flipped still ranks held-out pairs
    // well above chance, and agrees with the noisy labels less than with gold.
    let rm = &summary["reward_model"];
    let (gold_accuracy, noisy_accuracy) = (rm["gold_accuracy"].as_f64().unwrap(), rm["noisy_accuracy"].as_f64().unwrap());
    assert!((0.6..=1.0).contains(&gold_accuracy), "{summary}");
    assert!(noisy_accuracy > 0.0 && noisy_accuracy < gold_accuracy, "{summary}");
    assert!(stdout.contains("best-of-") && stdout.contains("reward model"), "{stdout}");
    for file in ["metrics.jsonl", "reward.png", "gold.png", "kl.png", "tokenizer.json", "sft/model.safetensors", "ppo/config.json"] {
        assert!(out.join(file).exists(), "{file} missing");
    }
    let lines = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert!(lines.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()));
    std::fs::remove_dir_all(&out).unwrap();
}

/// `rlhf demo --task style --quick`: reward over-optimisation. Against the proxy reward model with
/// a weak KL penalty the proxy rises while gold peaks and falls as KL grows; the strong penalty
/// ends with more gold and less KL. Summary, per-run metrics lines and charts are written.
#[test]
fn quick_style_demo_shows_reward_overoptimisation() {
    let out = std::env::temp_dir().join(format!("rlhf-demo-style-test-{}", std::process::id()));
    let (ok, stdout, stderr) = rlhf(&["demo", "--task", "style", "--quick", "--out", out.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("weak_kl") && stdout.contains("strong_kl") && stdout.contains("grm"), "{stdout}");
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["task"], "style");
    for key in ["sft", "ppo", "grpo"] {
        assert!(summary[key]["gold"].as_f64().is_some(), "{key}: {summary}");
    }
    for key in ["gold_accuracy", "noisy_accuracy"] {
        assert!((0.0..=1.0).contains(&summary["reward_model"][key].as_f64().unwrap()), "{summary}");
    }
    let runs = summary["overoptimisation"]["runs"].as_array().unwrap();
    let run = |name: &str| runs.iter().find(|r| r["name"] == name).unwrap_or_else(|| panic!("{name} missing"));
    let f = |r: &Value, k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} missing in {r}"));
    let (weak, strong) = (run("weak_kl"), run("strong_kl"));
    assert!(f(weak, "final_proxy") > f(weak, "start_proxy") + 1.0, "proxy should rise: {weak}");
    assert!(f(weak, "peak_gold") > f(weak, "start_gold") + 0.05, "gold should rise first: {weak}");
    assert!(f(weak, "peak_gold") > f(weak, "final_gold") + 0.15, "gold should fall from its peak: {weak}");
    assert!(f(weak, "final_kl") > 2.0 * f(weak, "peak_kl"), "the fall should come at higher KL: {weak}");
    assert!(f(strong, "final_gold") > f(weak, "final_gold") + 0.15, "{strong} vs {weak}");
    assert!(f(strong, "final_kl") < f(weak, "final_kl"), "{strong} vs {weak}");
    assert!(run("grm")["beta"] == weak["beta"]);
    let lines = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let lines: Vec<Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for name in ["weak_kl", "strong_kl", "grm", "grpo"] {
        assert!(lines.iter().any(|l| l["run"] == name), "no metrics for {name}");
    }
    for file in ["style_gold_vs_kl.png", "style_proxy_vs_kl.png", "style_gold.png", "ppo_weak_kl/config.json", "grpo/config.json"] {
        assert!(out.join(file).exists(), "{file} missing");
    }
    std::fs::remove_dir_all(&out).unwrap();
}

/// `rlhf kernels report --json`: ptxas resources per kernel and architecture, with no spills, the
/// emulator's counts and a roofline estimate for every kernel that has an Emu op, and the
/// memory-critical ops within their I/O models.
#[test]
fn kernels_report_has_resources_emulator_counts_and_io_models() {
    let (ok, stdout, stderr) = rlhf(&["kernels", "report", "--json"]);
    assert!(ok, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let rows = report["kernels"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["arch"] == "sm_80") && rows.iter().any(|r| r["arch"] == "sm_90"));
    for r in rows {
        assert_eq!(r["spill_bytes"], 0, "{r}");
        assert!(r["registers"].as_u64().unwrap() > 0, "{r}");
        assert!(r["emu_launches"].as_u64().unwrap() > 0, "{r}");
        let coalescing = r["coalescing"].as_f64().unwrap();
        assert!(coalescing > 0.0 && coalescing <= 1.0, "{r}");
        let bytes = r["global_bytes_per_launch"].as_f64().unwrap();
        assert!(bytes > 0.0, "{r}");
        assert!(r["roofline_us_h100"].as_f64().unwrap() >= 0.999e6 * bytes / 3.35e12, "{r}");
    }
    let io = report["io_model"].as_array().unwrap();
    assert!(!io.is_empty());
    for r in io {
        let ratio = r["ratio"].as_f64().unwrap();
        assert!((1.0..=1.1).contains(&ratio), "{r}");
        assert!(r["coalescing"].as_f64().unwrap() >= 0.9, "{r}");
    }
}

/// `--backend cuda` without a usable GPU (this machine, CI) fails with the Cuda backend's own
/// error, naming what is missing, and a non-zero exit; with one, the command runs on it.
#[test]
fn cuda_backend_without_a_gpu_is_a_clear_error() {
    let Err(cuda_error) = runtime::Cuda::new(0) else {
        eprintln!("a Cuda device is present: nothing to check here");
        return;
    };
    let model = fixture("gpt2");
    for args in [
        &["logprobs", "--backend", "cuda", "--model", &model, "--ids", "1,2,3"][..],
        &["generate", "--backend", "cuda", "--model", &model, "--ids", "1", "--max-new-tokens", "2"],
        &["demo", "--backend", "cuda", "--quick", "--out", "/nonexistent-dir/never-written"],
    ] {
        let (ok, _, stderr) = rlhf(args);
        assert!(!ok, "{args:?} succeeded without a GPU");
        assert_eq!(stderr.trim(), format!("error: {cuda_error}"), "{args:?}");
    }
    let (ok, _, stderr) = rlhf(&["logprobs", "--backend", "tpu", "--model", &model, "--ids", "1"]);
    assert!(!ok && stderr.contains("cpu, emu, cuda"), "{stderr}");
}
