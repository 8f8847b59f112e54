//! The benchmark must keep working: run every scenario in quick mode (about a second each,
//! small seeds) and check that each printed its line, with no errors and, for the send
//! scenarios, as many committed messages as 2xx answers; for the stream scenario, every message
//! delivered to every subscriber. No timing is asserted.

use std::process::Command;

#[test]
fn quick_run_covers_every_scenario_without_errors() {
    let exe = env!("CARGO_BIN_EXE_confab-bench");
    let listing = Command::new(exe)
        .args(["--quick", "--list"])
        .output()
        .expect("running confab-bench --list");
    assert!(listing.status.success());
    let names: Vec<String> = String::from_utf8(listing.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(names.len() >= 20, "too few scenarios: {names:?}");
    assert!(
        names.iter().any(|n| n.starts_with("send-kaizala/")),
        "no Kaizala send scenario: {names:?}"
    );

    let dir = std::env::temp_dir().join(format!("confab-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json_path = dir.join("quick.jsonl");
    let output = Command::new(exe)
        .arg("--quick")
        .arg("--work-dir")
        .arg(&dir)
        .arg("--json")
        .arg(&json_path)
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

    // One printed line per scenario.
    for name in &names {
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
    assert!(stdout.contains("ready/http/fresh"), "{stdout}");
    assert!(stdout.contains("ready/https/restart"), "{stdout}");
    assert!(stdout.contains("seed/list"), "{stdout}");
    assert!(
        names.iter().any(|n| n.starts_with("stream/http/")),
        "no stream scenario: {names:?}"
    );

    // The same in the JSON lines.
    let records: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    for name in &names {
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
