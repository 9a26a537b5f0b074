//! Interop with SMTP clients we did not write: `swaks` (with and without
//! `--tls`) and Python's `smtplib` (with `starttls()` and certificate
//! verification against the certificate generated here), each talking to
//! our server over loopback. The assertions are on what our server received.
//!
//! A test skips only when its tool is not installed, and says so on stderr;
//! under CI (`CI=true`) a missing tool is a failure.
//! `scripts/install-test-deps.sh` installs both.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::*;
use portcullis_smtp_tls::*;

fn find_tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{name} is not installed; scripts/install-test-deps.sh must install it in CI");
        }
        eprintln!(
            "\n*** SKIPPING interop test: `{name}` is not installed (run scripts/install-test-deps.sh) ***\n"
        );
    }
    found
}

async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn swaks(addr: std::net::SocketAddr, tls: bool) -> Option<Command> {
    let mut cmd = Command::new(find_tool("swaks")?);
    cmd.args(["--server", "127.0.0.1", "--port", &addr.port().to_string()])
        .args([
            "--from",
            "sender@client.test",
            "--to",
            "rcpt@mx.test",
            "--helo",
            "client.test",
        ])
        .args([
            "--header",
            "Subject: interop via swaks",
            "--body",
            "hello from swaks",
        ])
        .args(["--timeout", "30"]);
    if tls {
        cmd.arg("--tls");
    }
    Some(cmd)
}

fn assert_received_swaks(got: &Received) {
    assert_eq!(got.messages.len(), 1, "{got:?}");
    let (env, body) = &got.messages[0];
    assert_eq!(env.from.to_string(), "<sender@client.test>");
    assert_eq!(
        env.to.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["<rcpt@mx.test>"]
    );
    let body = String::from_utf8_lossy(body);
    assert!(body.contains("Subject: interop via swaks\r\n"), "{body}");
    assert!(body.contains("\r\n\r\nhello from swaks\r\n"), "{body}");
}

#[tokio::test]
async fn swaks_plaintext_to_a_preferred_server() {
    let pki = Pki::new();
    let (addr, server) = serve_one(TlsMode::Preferred, &pki).await;
    let Some(cmd) = swaks(addr, false) else {
        return;
    };
    let out = run(cmd).await;
    assert!(
        out.status.success(),
        "swaks failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let got = server.await.unwrap();
    assert_received_swaks(&got);
    assert!(got.tls.is_none());
}

#[tokio::test]
async fn swaks_starttls_to_a_required_server() {
    let pki = Pki::new();
    let (addr, server) = serve_one(TlsMode::Required, &pki).await;
    let Some(cmd) = swaks(addr, true) else { return };
    let out = run(cmd).await;
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "swaks failed: {transcript}");
    assert!(
        transcript.contains("<-  220 2.0.0 Ready to start TLS"),
        "{transcript}"
    );
    let got = server.await.unwrap();
    assert_received_swaks(&got);
    let tls = got.tls.expect("the server saw TLS");
    assert!(tls.protocol.starts_with("TLSv1."), "{tls}");
}

#[tokio::test]
async fn swaks_without_tls_is_refused_by_a_required_server() {
    let pki = Pki::new();
    let (addr, server) = serve_one(TlsMode::Required, &pki).await;
    let Some(cmd) = swaks(addr, false) else {
        return;
    };
    let out = run(cmd).await;
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{transcript}");
    assert!(
        transcript.contains("530 5.7.0 Must issue a STARTTLS command first"),
        "{transcript}"
    );
    let got = server.await.unwrap();
    assert!(got.messages.is_empty());
    let end = got.end.unwrap();
    assert!(end.refused_without_tls >= 1 && !end.tls_active, "{end:?}");
}

const PY_CLIENT: &str = r#"
import smtplib, ssl, sys
port, cafile, sender, rcpts, body, utf8 = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(","), sys.argv[5], sys.argv[6] == "1"
ctx = ssl.create_default_context(cafile=cafile)
s = smtplib.SMTP("127.0.0.1", int(port), local_hostname="client.test", timeout=30)
s.ehlo()
assert s.has_extn("starttls"), "STARTTLS not offered"
s.starttls(context=ctx)
s.ehlo()
assert not s.has_extn("starttls"), "STARTTLS offered again after TLS"
assert s.has_extn("requiretls"), "REQUIRETLS not offered after TLS"
opts = ["SMTPUTF8", "BODY=8BITMIME"] if utf8 else []
refused = s.sendmail(sender, rcpts, body.encode("utf-8"), mail_options=opts)
assert refused == {}, refused
print("cipher", s.sock.cipher())
s.quit()
"#;

async fn python_starttls(
    sender: &str,
    rcpts: &[&str],
    body: &str,
    utf8: bool,
) -> Option<(Received, String)> {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let cafile = dir.path().join("ca.pem");
    std::fs::write(&cafile, &pki.cert_pem).unwrap();
    let (addr, server) = serve_one(TlsMode::Required, &pki).await;
    let mut cmd = Command::new(find_tool("python3")?);
    cmd.args(["-c", PY_CLIENT, &addr.port().to_string()])
        .arg(&cafile)
        .args([sender, &rcpts.join(","), body, if utf8 { "1" } else { "0" }]);
    let out = run(cmd).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python smtplib failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some((server.await.unwrap(), stdout))
}

#[tokio::test]
async fn python_smtplib_starttls_with_verified_certificate() {
    let body = "Subject: interop via smtplib\r\n\r\n.starts with a dot\r\nbye\r\n";
    let Some((got, stdout)) = python_starttls(
        "sender@client.test",
        &["a@mx.test", "b@mx.test"],
        body,
        false,
    )
    .await
    else {
        return;
    };
    assert!(stdout.contains("TLSv1."), "{stdout}");
    let tls = got.tls.expect("server saw TLS");
    assert_eq!(got.messages.len(), 1);
    let (env, received) = &got.messages[0];
    assert_eq!(env.to.len(), 2);
    assert_eq!(
        String::from_utf8_lossy(received),
        body,
        "dot-stuffing by smtplib, unstuffing by us"
    );
    assert!(
        stdout.contains(tls.cipher.trim_start_matches("TLS13_")),
        "python cipher {stdout} vs ours {tls}"
    );
}

#[tokio::test]
async fn python_smtplib_smtputf8_and_8bit_body() {
    let body = "Subject: caf\u{e9}\r\n\r\n\u{3053}\u{3093}\u{306b}\u{3061}\u{306f}\r\n";
    let Some((got, _)) =
        python_starttls("jösé@bücher.test", &["δοκιμή@παράδειγμα.test"], body, true).await
    else {
        return;
    };
    let (env, received) = &got.messages[0];
    assert!(env.params.smtputf8 && env.from.is_utf8() && env.to[0].is_utf8());
    assert_eq!(env.to[0].to_string(), "<δοκιμή@παράδειγμα.test>");
    assert_eq!(String::from_utf8_lossy(received), body);
}
