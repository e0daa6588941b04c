//! The official OpenAI and Anthropic Python clients parse every mock
//! answer of their APIs. `scripts/test-env.sh` installs them in a venv and
//! sets PERISCOPE_PYTHON; under CI=true a missing client is a failure, not
//! a skip.

use crate::common::MockProc;

/// Run `script` (in tests/it) with `args` in the test venv's Python, which
/// must have `module`; skipped without it, unless CI=true.
fn run_sdk_script(module: &str, script: &str, args: &[&str]) {
    let python = std::env::var("PERISCOPE_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_sdk = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !has_sdk {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the {module} Python package is missing under CI=true: run scripts/test-env.sh"
        );
        eprintln!("skipping: the {module} Python package is not installed (scripts/test-env.sh installs it)");
        return;
    }
    let path = format!("{}/tests/it/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(&python)
        .arg(&path)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_official_openai_client_parses_the_mock() {
    let mock = MockProc::start(&["--ttft", "1ms", "--itl", "0ms"]);
    run_sdk_script("openai", "openai_sdk.py", &[&mock.base()]);
}

#[test]
fn the_official_anthropic_client_parses_the_mocks_messages() {
    let mock = MockProc::start(&["--ttft", "1ms", "--itl", "0ms", "--api-key", "sk-ant-sdk"]);
    run_sdk_script(
        "anthropic",
        "anthropic_sdk.py",
        &[&mock.url(""), "sk-ant-sdk"],
    );
}
