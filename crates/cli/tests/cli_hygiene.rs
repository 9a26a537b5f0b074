//! Issue 10 item 18, on the real binary: output into a closed pipe ends
//! quietly; `--json` works on every command that prints results and is
//! refused where it means nothing; hints name commands that exist; options
//! appear only in the help of commands they concern; completions and man
//! pages come from the clap definitions.

use std::io::Read;
use std::process::{Command, Output, Stdio};

use rcgen::{CertificateParams, KeyPair};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

fn portcullis(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("PORTCULLIS_STORE")
        .output()
        .expect("run portcullis")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_reader_that_stops_early_does_not_make_it_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("certs");
    let s = store.to_str().unwrap();
    assert!(
        portcullis(&["--store", s, "cert", "create", "a", "--cn", "a.example.com"])
            .status
            .success()
    );
    // The system CA list as PEM is far larger than a pipe's buffer:
    // `| head -c 64`.
    let mut child = Command::new(BIN)
        .args(["--store", s, "ca", "export", "system", "--out", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn json_everywhere_a_result_is_printed_and_refused_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // config validate, valid and not.
    let (default, _) = text(&portcullis(&["config", "print-default"]));
    let good = d.join("good.toml");
    std::fs::write(
        &good,
        default.replace(
            "data-dir = \"./portcullis-data\"",
            &format!("data-dir = {:?}", d.join("data").display().to_string()),
        ),
    )
    .unwrap();
    let out = portcullis(&["config", "validate", good.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], true, "{v}");
    let bad = d.join("bad.toml");
    std::fs::write(&bad, "hostname = \"bad..name\"\n").unwrap();
    let out = portcullis(&["--json", "config", "validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["problems"][0]["key"], "hostname");
    assert_eq!(v["problems"][0]["line"], 1);

    // dane tlsa and dane verify.
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["mx.example.com".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let pem = d.join("leaf.pem");
    std::fs::write(&pem, cert.pem()).unwrap();
    let out = portcullis(&["dane", "tlsa", pem.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let record = v["record"].as_str().unwrap().to_owned();
    assert!(record.starts_with("3 1 1 "), "{v}");
    let out = portcullis(&[
        "dane",
        "verify",
        "--json",
        "--tlsa",
        &record,
        "--tlsa",
        "1 1 1 00",
        "--chain",
        pem.to_str().unwrap(),
        "--name",
        "mx.example.com",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v["unusable"][0]["record"], "1 1 1 00");

    // Refused where the output is not a result.
    for args in [
        vec!["config", "print-default", "--json"],
        vec!["run", "--json"],
        vec!["completions", "bash", "--json"],
    ] {
        let out = portcullis(&args);
        let (_, err) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            err.contains("--json does not apply here"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn hints_name_commands_that_exist() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("certs");
    let s = store.to_str().unwrap();
    // Make the store with one custom CA, then delete one that is not there.
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = p.self_signed(&key).unwrap();
    let pem = dir.path().join("ca.pem");
    std::fs::write(&pem, ca.pem()).unwrap();
    assert!(
        portcullis(&["--store", s, "ca", "import", pem.to_str().unwrap()])
            .status
            .success()
    );
    let (_, err) = text(&portcullis(&["--store", s, "ca", "delete", "99"]));
    let hint = err
        .split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("no command in the hint: {err}"));
    assert_eq!(hint, "portcullis ca list custom", "{err}");
    let args: Vec<&str> = hint.split(' ').skip(1).collect();
    let mut full = vec!["--store", s];
    full.extend(args);
    assert!(
        portcullis(&full).status.success(),
        "the hinted command fails"
    );
}

#[test]
fn options_appear_only_where_they_mean_something() {
    for args in [
        vec!["queue", "list", "--help"],
        vec!["config", "validate", "--help"],
        vec!["dane", "verify", "--help"],
        vec!["dane", "tlsa", "--help"],
        vec!["check", "--help"],
        vec!["run", "--help"],
    ] {
        let (help, _) = text(&portcullis(&args));
        assert!(!help.contains("--store"), "{args:?}:\n{help}");
    }
    for args in [
        vec!["cert", "list", "--help"],
        vec!["ca", "list", "--help"],
        // The rollover and its check read the entry's keys from the store.
        vec!["dane", "rollover", "--help"],
        vec!["dane", "check", "--help"],
    ] {
        let (help, _) = text(&portcullis(&args));
        assert!(help.contains("--store"), "{args:?}:\n{help}");
    }
    // Both places still work for the store.
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("certs");
    let s = s.to_str().unwrap();
    assert!(
        portcullis(&["cert", "create", "a", "--cn", "a.example.com", "--store", s])
            .status
            .success()
    );
    let (list, _) = text(&portcullis(&["--store", s, "cert", "list"]));
    assert!(
        list.contains("a.example.com") || list.contains(" a "),
        "{list}"
    );
    let out = portcullis(&["queue", "list", "--store", s]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--store is not an option of queue"
    );
}

#[test]
fn completions_and_man_pages_come_from_the_command_definitions() {
    let (bash, _) = text(&portcullis(&["completions", "bash"]));
    assert!(
        bash.contains("_portcullis()") && bash.contains("install-signed"),
        "{bash}"
    );
    let (zsh, _) = text(&portcullis(&["completions", "zsh"]));
    assert!(zsh.starts_with("#compdef portcullis"), "{zsh}");
    let dir = tempfile::tempdir().unwrap();
    let out = portcullis(&["man", "--out", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", text(&out));
    for page in [
        "portcullis.1",
        "portcullis-cert.1",
        "portcullis-cert-create.1",
        "portcullis-queue-list.1",
    ] {
        let t = std::fs::read_to_string(dir.path().join(page)).unwrap();
        assert!(
            t.starts_with(".ie \\n(.g .ds Aq") || t.contains(".TH"),
            "{page}: {t}"
        );
    }
    // man(1) can read it.
    let rendered = Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(dir.path().join("portcullis-cert-create.1"))
        .env("MANWIDTH", "80")
        .output();
    if let Ok(r) = rendered
        && r.status.success()
    {
        assert!(String::from_utf8_lossy(&r.stdout).contains("--cn"));
    }
}
