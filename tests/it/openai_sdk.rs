//! The official OpenAI and Anthropic Python clients parse every mock
//! answer of their APIs. `scripts/test-env.sh` installs them in a venv and
//! sets PERISCOPE_PYTHON; under CI=true a missing client is a failure, not
//! a skip.

use crate::common::MockProc;

#[test]
fn the_official_openai_client_parses_the_mock() {
    let python = std::env::var("PERISCOPE_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_sdk = std::process::Command::new(&python)
        .args(["-c", "import openai"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !has_sdk {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the openai Python package is missing under CI=true: run scripts/test-env.sh"
        );
        eprintln!("skipping: the openai Python package is not installed (scripts/test-env.sh installs it)");
        return;
    }
    let mock = MockProc::start(&["--ttft", "1ms", "--itl", "0ms"]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/openai_sdk.py");
    let out = std::process::Command::new(&python)
        .args([script, &mock.base()])
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
fn the_official_anthropic_client_parses_the_mocks_messages() {
    let python = std::env::var("PERISCOPE_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_sdk = std::process::Command::new(&python)
        .args(["-c", "import anthropic"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !has_sdk {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the anthropic Python package is missing under CI=true: run scripts/test-env.sh"
        );
        eprintln!("skipping: the anthropic Python package is not installed (scripts/test-env.sh installs it)");
        return;
    }
    let mock = MockProc::start(&["--ttft", "1ms", "--itl", "0ms", "--api-key", "sk-ant-sdk"]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/anthropic_sdk.py");
    let out = std::process::Command::new(&python)
        .args([script, &mock.url(""), "sk-ant-sdk"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
