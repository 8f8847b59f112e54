//! The benchmark must keep working: run every scenario in quick mode (about a second each,
//! small seeds) and check that each printed its line, with no errors and, for the send
//! scenarios, as many committed messages as 2xx answers; for the stream scenario, every message
//! delivered to every subscriber. No timing is asserted.

use std::process::Command;

#[test]
fn quick_run_covers_every_scenario_without_errors() {
    let exe = env!("CARGO_BIN_EXE_confab-bench");
    let names = scenario_names(exe);
    assert!(names.len() >= 20, "too few scenarios: {names:?}");
    assert!(
        names.iter().any(|n| n.starts_with("send-kaizala/")),
        "no Kaizala send scenario: {names:?}"
    );

    let (stdout, json) = quick_run(exe, "sqlite", &[]);
    check_lines(&names, &stdout, &json);
    assert!(stdout.contains("ready/http/fresh"), "{stdout}");
    assert!(stdout.contains("ready/https/restart"), "{stdout}");
    assert!(stdout.contains("seed/list"), "{stdout}");
    assert!(
        names.iter().any(|n| n.starts_with("stream/http/")),
        "no stream scenario: {names:?}"
    );
}

/// The same run with confab's data in PostgreSQL (`--postgres`), over plain HTTP (the HTTPS
/// pass adds nothing a store could break), when a test database is configured
/// (`CONFAB_TEST_POSTGRES_URL`; `scripts/test` sets it).
#[test]
fn quick_run_on_postgres_covers_every_plain_http_scenario_without_errors() {
    let Ok(url) = std::env::var("CONFAB_TEST_POSTGRES_URL") else {
        eprintln!("CONFAB_TEST_POSTGRES_URL is not set: the benchmark on PostgreSQL is skipped");
        return;
    };
    let exe = env!("CARGO_BIN_EXE_confab-bench");
    let names: Vec<String> = scenario_names(exe)
        .into_iter()
        .filter(|n| n.contains("/http/"))
        .collect();
    let (stdout, json) = quick_run(
        exe,
        "postgres",
        &["--scenario", "/http/", "--postgres", &url],
    );
    assert!(
        stdout.contains("PostgreSQL schema confab_bench_"),
        "{stdout}"
    );
    check_lines(&names, &stdout, &json);
}

fn scenario_names(exe: &str) -> Vec<String> {
    let listing = Command::new(exe)
        .args(["--quick", "--list"])
        .output()
        .expect("running confab-bench --list");
    assert!(listing.status.success());
    String::from_utf8(listing.stdout)
        .expect("names")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Runs the quick mode with `args`; answers what it printed and its JSON lines.
fn quick_run(exe: &str, label: &str, args: &[&str]) -> (String, String) {
    let dir =
        std::env::temp_dir().join(format!("confab-bench-test-{label}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json_path = dir.join("quick.jsonl");
    let output = Command::new(exe)
        .arg("--quick")
        .arg("--work-dir")
        .arg(&dir)
        .arg("--json")
        .arg(&json_path)
        .args(args)
        .output()
        .expect("running confab-bench --quick");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let json = std::fs::read_to_string(&json_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        output.status.success(),
        "confab-bench --quick failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    (stdout, json)
}

/// Each scenario printed its line, without errors and with every 2xx send committed; the same
/// in the JSON lines.
fn check_lines(names: &[String], stdout: &str, json: &str) {
    // One printed line per scenario.
    for name in names {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name.as_str()))
            .unwrap_or_else(|| panic!("no line for {name}\n{stdout}"));
        assert!(line.contains("errors 0 "), "{line}");
        if name.starts_with("stream/") {
            assert!(line.contains(" deliveries/s "), "{line}");
            assert!(line.contains("missing 0)"), "{line}");
            continue;
        }
        assert!(line.contains(" req/s "), "{line}");
        assert!(!line.contains("MISMATCH"), "{line}");
        if name.starts_with("send") || name.starts_with("mixed/") {
            assert!(line.contains("= 2xx ok"), "{line}");
        }
        if !name.starts_with("ceiling/") {
            assert!(line.contains("ceiling "), "no ceiling ratio: {line}");
        }
    }

    // The same in the JSON lines.
    let records: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    for name in names {
        let record = records
            .iter()
            .find(|r| r["scenario"] == name.as_str())
            .unwrap_or_else(|| panic!("no JSON record for {name}"));
        assert_eq!(record["errors"], 0, "{record}");
        assert!(record["requests"].as_u64().unwrap() > 0, "{record}");
        if name.starts_with("stream/") {
            assert_eq!(record["missing"], 0, "{record}");
            assert_eq!(record["failed_streams"], 0, "{record}");
            assert!(record["sends"].as_u64().unwrap() > 0, "{record}");
            assert_eq!(
                record["deliveries"], record["expected_deliveries"],
                "{record}"
            );
        }
        if name.starts_with("send") || name.starts_with("mixed/") {
            assert_eq!(record["acknowledged"], record["committed"], "{record}");
            assert!(record["committed"].as_u64().unwrap() > 0, "{record}");
        }
    }
}
