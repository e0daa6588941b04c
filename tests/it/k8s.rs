//! deploy/k8s/ and the Dockerfile: the manifests rendered for 4 segments
//! pass the Kubernetes schemas (kubernetes-validate, offline), their wiring
//! (indices, start barrier, results, merge) is checked, and then played out
//! here: the segment pods' and the merge pod's own arguments and environment
//! run as local processes against the mock.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::*;
use serde::Deserialize;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A tool of the test venv (scripts/test-env.sh), or None (a failure under CI=true).
fn venv_tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var("PERISCOPE_PYTHON")
        .ok()
        .and_then(|py| Path::new(&py).parent().map(|d| d.join(name)))
        .filter(|p| p.exists());
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "{name} is missing: scripts/test-env.sh installs it (CI=true makes it a failure)"
            );
        }
        eprintln!("note: {name} is not installed (scripts/test-env.sh); skipping its check");
    }
    found
}

fn render(args: &[&str]) -> std::process::Output {
    Command::new("bash")
        .arg(root().join("deploy/k8s/render.sh"))
        .args(args)
        .env("PERISCOPE", BIN)
        .output()
        .unwrap()
}

fn documents(yaml: &str) -> Vec<Value> {
    yaml_serde::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).unwrap())
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// A container's environment: literal values, and ConfigMap references resolved.
fn env_of(container: &Value, configmap: &Value) -> Vec<(String, String)> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            let name = e["name"].as_str().unwrap().to_string();
            if let Some(v) = e["value"].as_str() {
                return Some((name, v.to_string()));
            }
            let r = &e["valueFrom"]["configMapKeyRef"];
            if r.is_null() {
                return None;
            }
            assert_eq!(r["name"], configmap["metadata"]["name"]);
            let key = r["key"].as_str().unwrap();
            let value = configmap["data"][key]
                .as_str()
                .unwrap_or_else(|| panic!("the ConfigMap has no key {key}"));
            Some((name, value.to_string()))
        })
        .collect()
}

#[test]
fn the_manifests_for_four_segments_validate_and_are_wired_together() {
    let out = render(&["-n", "4", "-r", "k8stest", "-i", "periscope:test"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let yaml = stdout(&out);
    let docs = documents(&yaml);
    assert_eq!(docs.len(), 4, "{yaml}");

    // Schema validation, offline.
    if let Some(kv) = venv_tool("kubernetes-validate") {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("run.yaml");
        std::fs::write(&file, &yaml).unwrap();
        let v = Command::new(kv)
            .arg("--strict")
            .arg(&file)
            .output()
            .unwrap();
        assert!(v.status.success(), "{}{}", stdout(&v), stderr(&v));
        assert_eq!(
            stdout(&v).matches(" passed for resource ").count(),
            4,
            "{}",
            stdout(&v)
        );
    }

    let cm = kind(&docs, "ConfigMap", "periscope-plan");
    assert_eq!(cm["data"]["run_id"], "k8stest");
    let start = humantime::parse_rfc3339(cm["data"]["start_at"].as_str().unwrap()).unwrap();
    let lead = start
        .duration_since(std::time::SystemTime::now())
        .expect("the start is ahead");
    assert!(lead.as_secs() >= 100, "{lead:?}: the default lead is 120s");
    let plan = std::fs::read_to_string(root().join("deploy/k8s/plan.yaml")).unwrap();
    assert_eq!(
        cm["data"]["plan.yaml"].as_str().unwrap().trim(),
        plan.trim()
    );

    // The segments: an Indexed Job of 4 pods at once, no retries.
    let job = kind(&docs, "Job", "periscope");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    assert_eq!(spec["completions"], 4);
    assert_eq!(spec["parallelism"], 4);
    assert_eq!(spec["backoffLimit"], 0);
    let pod = &spec["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "periscope:test");
    let args = strings(&c["args"]);
    assert_eq!(args[..4], ["run", "/plan/plan.yaml", "--segments", "4"]);
    let json_at = args.iter().position(|a| a == "--json").unwrap();
    assert_eq!(
        args[json_at + 1],
        "/results/k8stest-segment-$(JOB_COMPLETION_INDEX).json"
    );
    // The barrier and the run id come from the ConfigMap, the same for all.
    let env = env_of(c, cm);
    assert!(env.contains(&("PERISCOPE_RUN_ID".into(), "k8stest".into())));
    assert!(env.contains(&(
        "PERISCOPE_START_AT".into(),
        cm["data"]["start_at"].as_str().unwrap().into()
    )));
    let mounts = |pod: &Value, container: &Value| -> Vec<(String, Value)> {
        container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let vol = pod["volumes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|v| v["name"] == m["name"])
                    .unwrap()
                    .clone();
                (m["mountPath"].as_str().unwrap().to_string(), vol)
            })
            .collect()
    };
    let seg_mounts = mounts(pod, c);
    let plan_vol = &seg_mounts.iter().find(|(p, _)| p == "/plan").unwrap().1;
    assert_eq!(plan_vol["configMap"]["name"], "periscope-plan");
    assert_eq!(plan_vol["configMap"]["items"][0]["path"], "plan.yaml");
    let results = &seg_mounts.iter().find(|(p, _)| p == "/results").unwrap().1;
    let claim = results["persistentVolumeClaim"]["claimName"].clone();
    let pvc = kind(&docs, "PersistentVolumeClaim", claim.as_str().unwrap());
    assert_eq!(pvc["spec"]["accessModes"][0], "ReadWriteMany");

    // The merge: every segment's result, on the same volume, and exit 99
    // fails the Job.
    let merge = kind(&docs, "Job", "periscope-merge");
    let mpod = &merge["spec"]["template"]["spec"];
    let mc = &mpod["containers"][0];
    let margs = strings(&mc["args"]);
    assert_eq!(margs[0], "merge");
    let inputs: Vec<&String> = margs.iter().filter(|a| a.contains("-segment-")).collect();
    let want: Vec<String> = (0..4)
        .map(|i| format!("/results/k8stest-segment-{i}.json"))
        .collect();
    assert_eq!(inputs, want.iter().collect::<Vec<_>>());
    assert!(margs.contains(&"--wait".to_string()));
    let merge_results = &mounts(mpod, mc)
        .into_iter()
        .find(|(p, _)| p == "/results")
        .unwrap()
        .1;
    assert_eq!(merge_results["persistentVolumeClaim"]["claimName"], claim);
    let rule = &merge["spec"]["podFailurePolicy"]["rules"][0];
    assert_eq!(rule["action"], "FailJob");
    assert!(rule["onExitCodes"]["values"]
        .as_array()
        .unwrap()
        .contains(&99.into()));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rendered_pods_run_here_as_one_plan_and_the_merge_judges_it() {
    let mock = MockProc::start(&["--ttft", "15ms", "--itl", "2ms", "--output-tokens", "6"]);
    let dir = tempfile::tempdir().unwrap();
    // The user's plan, aimed at the mock; a threshold that fails on the whole.
    let plan = dir.path().join("plan.yaml");
    std::fs::write(
        &plan,
        format!(
            "workload: completions\ntarget: {}\nvus: 8\nduration: 3s\npreflight: false\nthresholds:\n  - ttft.p95<5s\n  - e2e.p50<1ms\n",
            mock.base()
        ),
    )
    .unwrap();
    let plan_s = plan.display().to_string();
    let out = render(&["-n", "4", "-r", "localk8s", "-s", "6", "-p", &plan_s]);
    assert!(out.status.success(), "{}", stderr(&out));
    let docs = documents(&stdout(&out));
    let cm = kind(&docs, "ConfigMap", "periscope-plan");
    let job = kind(&docs, "Job", "periscope");
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    let results = dir.path().join("results");
    std::fs::create_dir(&results).unwrap();
    let plan_dir = dir.path().join("plan");
    std::fs::create_dir(&plan_dir).unwrap();
    std::fs::write(
        plan_dir.join("plan.yaml"),
        cm["data"]["plan.yaml"].as_str().unwrap(),
    )
    .unwrap();
    // Kubernetes' part: the mounts, the index, the $(VAR) expansion.
    let local = |a: &str, index: Option<usize>| -> String {
        let a = a
            .replace("/plan/", &format!("{}/", plan_dir.display()))
            .replace("/results/", &format!("{}/", results.display()));
        match index {
            Some(i) => a.replace("$(JOB_COMPLETION_INDEX)", &i.to_string()),
            None => a,
        }
    };
    let env = env_of(c, cm);
    let pods: Vec<_> = (0..4)
        .map(|i| {
            Command::new(BIN)
                .args(strings(&c["args"]).iter().map(|a| local(a, Some(i))))
                .envs(env.iter().cloned())
                .env("JOB_COMPLETION_INDEX", i.to_string())
                .env_remove("OPENAI_BASE_URL")
                .env_remove("GITHUB_STEP_SUMMARY")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // The merge Job starts with them and waits for their results.
    let merge = kind(&docs, "Job", "periscope-merge");
    let mc = &merge["spec"]["template"]["spec"]["containers"][0];
    let merging = Command::new(BIN)
        .args(strings(&mc["args"]).iter().map(|a| local(a, None)))
        .env_remove("GITHUB_STEP_SUMMARY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (pods, merged) = tokio::task::spawn_blocking(move || {
        let pods: Vec<_> = pods
            .into_iter()
            .map(|p| p.wait_with_output().unwrap())
            .collect();
        (pods, merging.wait_with_output().unwrap())
    })
    .await
    .unwrap();
    for (i, p) in pods.iter().enumerate() {
        assert!(p.status.success(), "pod {i}: {}", stderr(p));
        assert!(stderr(p).contains("waiting"), "pod {i}: {}", stderr(p));
    }
    // The verdict is the whole run's: e2e.p50<1ms fails, and only there.
    assert_eq!(merged.status.code(), Some(99), "{}", stderr(&merged));
    assert!(stdout(&merged).contains("merged from 4 results"));
    let r = read_json(&results.join("localk8s-merged.json").display().to_string());
    assert_eq!(r["run_id"], "localk8s");
    let parts: u64 = (0..4)
        .map(|i| {
            let p = read_json(
                &results
                    .join(format!("localk8s-segment-{i}.json"))
                    .display()
                    .to_string(),
            );
            assert_eq!(p["plan"]["segment"]["index"], i + 1);
            p["summary"]["requests"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(r["summary"]["requests"].as_u64().unwrap(), parts);
    assert!(parts > 100, "{parts}");
    assert!(results.join("localk8s-merged.html").exists());
}

/// The segments kept off the system under test's nodes and on the nodes
/// asked for, and the job timeout of the Tempo suite's variable.
#[test]
fn segments_stay_off_the_system_under_test_on_the_nodes_asked_for() {
    let out = Command::new("bash")
        .arg(root().join("deploy/k8s/render.sh"))
        .args(["-n", "2", "-r", "iso", "-a", "app.kubernetes.io/name=tempo"])
        .args([
            "-S",
            "node-role.kubernetes.io/infra=,kubernetes.io/os=linux",
        ])
        .env("PERISCOPE", BIN)
        .env("TEMPO_PERF_JOB_TIMEOUT", "30m")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let docs = documents(&stdout(&out));
    let job = kind(&docs, "Job", "periscope");
    let pod = &job["spec"]["template"]["spec"];
    let required =
        &pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(required["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(
        required["labelSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "tempo"
    );
    assert_eq!(pod["nodeSelector"]["node-role.kubernetes.io/infra"], "");
    assert_eq!(pod["nodeSelector"]["kubernetes.io/os"], "linux");
    assert_eq!(job["spec"]["activeDeadlineSeconds"], 1800);
    let o = render(&["-a", "no label"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("-a no label: give one label as KEY=VALUE"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn render_refuses_bad_settings_and_plans_that_do_not_split() {
    let o = render(&["-n", "0"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("-n 0: give a whole number"),
        "{}",
        stderr(&o)
    );
    let o = render(&["-N", "Bad_Name"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("a Kubernetes name"), "{}", stderr(&o));
    // Periscope checks the plan: 3 VUs cannot make 4 segments.
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("small.yaml");
    std::fs::write(
        &plan,
        "workload: completions\ntarget: http://127.0.0.1:9/v1\nvus: 3\n",
    )
    .unwrap();
    let o = render(&["-n", "4", "-p", &plan.display().to_string()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("use at most 3 segments"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty());
}

#[test]
fn the_dockerfile_passes_hadolint_and_builds_the_locked_release_binary() {
    let dockerfile = root().join("Dockerfile");
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    // Two stages: the build, and a runtime that gets only the binary.
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "{froms:?}");
    assert!(froms[0].ends_with(" AS build"), "{}", froms[0]);
    assert!(text.contains("cargo build --release --locked"));
    assert!(text.contains("COPY --from=build /periscope /usr/local/bin/periscope"));
    // Everything the binary embeds is copied in.
    for dir in ["src", "scenarios", "datasets"] {
        assert!(text.contains(&format!("COPY {dir} ./{dir}")), "{dir}");
    }
    assert!(text.contains("USER 65532"));
    if let Some(hadolint) = venv_tool("hadolint") {
        let o = Command::new(hadolint).arg(&dockerfile).output().unwrap();
        assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    }
}
