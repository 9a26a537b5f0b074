//! `examples/portcullis.service` as systemd reads it: `systemd-analyze
//! verify` (systemd's own parser) finds no unknown key or bad value, with
//! the unit pointed at the binary just built; and the unit keeps what the
//! README promises (readiness, reload by SIGHUP, the sandbox, a dedicated
//! user with only CAP_NET_BIND_SERVICE). The readiness messages themselves
//! are tested in ops_reload.rs (`systemd_hears_ready_reloading_and_stopping`).

use std::process::Command;

const UNIT: &str = include_str!("../../../examples/portcullis.service");

#[test]
fn the_example_unit_keeps_its_promises() {
    let lines: Vec<&str> = UNIT.lines().map(str::trim).collect();
    for want in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ExecStart=/usr/local/bin/portcullis run --config /etc/portcullis/portcullis.toml",
        "User=portcullis",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "StateDirectory=portcullis",
    ] {
        assert!(
            lines.contains(&want),
            "examples/portcullis.service lacks {want:?}"
        );
    }
}

#[test]
fn systemd_analyze_verify_accepts_the_example_unit() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze must be installed in CI (scripts/install-test-deps.sh)"
        );
        eprintln!("SKIPPED: systemd-analyze is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("portcullis.service");
    std::fs::write(
        &unit,
        UNIT.replace(
            "/usr/local/bin/portcullis",
            env!("CARGO_BIN_EXE_portcullis"),
        ),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // systemd ignores unknown keys and bad values with a warning only.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("portcullis.service"))
        .collect();
    assert!(
        ours.is_empty(),
        "systemd-analyze verify:\n{}",
        ours.join("\n")
    );
}
