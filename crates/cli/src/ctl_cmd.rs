//! `portcullis ctl`: the operator's client for the running gateway's admin
//! API (`docs/admin-api.md`). Every command is one HTTPS request; by default
//! to the local gateway, found through its data directory (URL, pinned
//! certificate and token), so it works with no set-up on the gateway's
//! host. Answers are printed as text, or as the API's JSON with `--json`.

use std::path::PathBuf;
use std::process::ExitCode;

use portcullis_mta::config::{Config, LoadedConfig};
use serde_json::{Value, json};

use crate::Global;
use crate::ctl_args::{
    CacheWhat, ConfigWhat, CtlCommand, DnsWhat, ExemptionsWhat, NeverDowngradeWhat, QueueWhat,
    ResumeWhat, StsWhat, SuspendWhat, TlsReportWhat, TlsWhat, TokenWhat,
};
use crate::ctl_client::{self, Answer, Target, Trust};
use crate::ctl_print;
use crate::output::finish;

/// Where the gateway is and how to authenticate.
#[derive(Debug, Clone, clap::Args)]
pub struct CtlAt {
    /// The gateway's configuration file (for its data directory).
    #[arg(long, value_name = "FILE", env = "PORTCULLIS_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// The gateway's data directory: its admin/endpoint.json gives the URL
    /// and the certificate to pin, its admin/ctl-token the token. Default:
    /// from --config, else ./portcullis-data.
    #[arg(long, value_name = "DIR", env = "PORTCULLIS_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// The admin listener (https://HOST:PORT) of a remote gateway; use with
    /// --token-file and --cacert.
    #[arg(long, value_name = "URL", env = "PORTCULLIS_URL", global = true)]
    url: Option<String>,
    /// A file holding the API token (first line).
    #[arg(
        long,
        value_name = "FILE",
        env = "PORTCULLIS_TOKEN_FILE",
        global = true
    )]
    token_file: Option<PathBuf>,
    /// The CA (PEM) that issued a remote gateway's admin certificate.
    #[arg(long, value_name = "FILE", global = true)]
    cacert: Option<PathBuf>,
}

impl CtlAt {
    /// A remote gateway was named (no local data directory to fall back on).
    pub(crate) fn remote(&self) -> bool {
        self.url.is_some()
    }
}

pub(crate) fn data_dir(at: &CtlAt) -> Result<PathBuf, String> {
    if let Some(d) = &at.data_dir {
        return Ok(d.clone());
    }
    Ok(match &at.config {
        Some(f) => {
            LoadedConfig::load(f)
                .map_err(|r| {
                    format!(
                        "cannot read the configuration: {}",
                        r.to_string().replace('\n', "; ")
                    )
                })?
                .config
                .data_dir
        }
        None => Config::builtin_default().data_dir,
    })
}

pub(crate) fn target(at: &CtlAt) -> Result<Target, String> {
    let token = match &at.token_file {
        Some(f) => Some(ctl_client::read_token(f)?),
        None => None,
    };
    if let (Some(url), Some(ca)) = (&at.url, &at.cacert) {
        let Some(token) = token else {
            return Err("--url needs --token-file (the API token)".into());
        };
        return Ok(Target {
            url: url.clone(),
            token,
            trust: Trust::Ca(ca.clone()),
        });
    }
    ctl_client::local(&data_dir(at)?, at.url.clone(), token)
}

fn passphrase(file: Option<&PathBuf>) -> Result<String, String> {
    match file {
        Some(f) => {
            ctl_client::read_token(f).map_err(|e| e.replace("token file", "passphrase file"))
        }
        None => std::env::var("PORTCULLIS_PASSPHRASE").map_err(|_| {
            "a passphrase is needed: --passphrase-file FILE, or PORTCULLIS_PASSPHRASE".to_owned()
        }),
    }
}

/// Runs a ctl command.
pub fn run(global: &Global, at: &CtlAt, cmd: CtlCommand) -> ExitCode {
    finish(run_inner(global, at, cmd))
}

fn run_inner(global: &Global, at: &CtlAt, cmd: CtlCommand) -> Result<(), String> {
    if let CtlCommand::Alerts = cmd {
        // Works without a reachable gateway: no target needed up front.
        return crate::ctl_alerts::run(global, at);
    }
    let t = target(at)?;
    let call = |method: &str, path: &str, body: Option<Value>| -> Result<Value, String> {
        let answer = ctl_client::request(&t, method, path, body.as_ref())?;
        check(answer)
    };
    let json_out = global.json;
    let show = |v: Value, human: &dyn Fn(&Value) -> String| -> Result<(), String> {
        if json_out {
            println!(
                "{}",
                serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
            );
        } else {
            let text = human(&v);
            if !text.is_empty() {
                println!("{}", text.trim_end());
            }
        }
        Ok(())
    };
    let result_line = |v: &Value| v["result"].as_str().unwrap_or_default().to_owned();
    match cmd {
        CtlCommand::Alerts => crate::ctl_alerts::run(global, at),
        CtlCommand::Status => show(call("GET", "/api/status", None)?, &ctl_print::status),
        CtlCommand::Health => show(
            call("GET", "/api/health", None)?,
            &crate::ctl_health::health,
        ),
        CtlCommand::Suspend(SuspendWhat::Listener { name, delay }) => {
            let body = delay.map(|d| json!({ "delay_seconds": d }));
            show(
                call(
                    "POST",
                    &format!("/api/listeners/{}/suspend", path_part(&name)),
                    body,
                )?,
                &result_line,
            )
        }
        CtlCommand::Resume(ResumeWhat::Listener { name }) => show(
            call(
                "POST",
                &format!("/api/listeners/{}/resume", path_part(&name)),
                None,
            )?,
            &result_line,
        ),
        CtlCommand::Suspend(SuspendWhat::Delivery { target, cluster }) => show(
            call(
                "POST",
                "/api/delivery/suspend",
                Some(json!({ "target": target, "cluster": cluster })),
            )?,
            &result_line,
        ),
        CtlCommand::Resume(ResumeWhat::Delivery { target, cluster }) => show(
            call(
                "POST",
                "/api/delivery/resume",
                Some(json!({ "target": target, "cluster": cluster })),
            )?,
            &result_line,
        ),
        CtlCommand::Reload => show(call("POST", "/api/reload", None)?, &ctl_print::reload),
        CtlCommand::Queue(q) => {
            let request = match q {
                QueueWhat::List => json!({"command": "list"}),
                QueueWhat::Show { id } => json!({"command": "show", "id": id}),
                QueueWhat::Retry { id, domain, all: _ } => {
                    let target = match (id, domain) {
                        (Some(id), _) => json!({ "id": id }),
                        (_, Some(d)) => json!({ "domain": d }),
                        _ => json!("all"),
                    };
                    json!({"command": "retry", "target": target})
                }
                QueueWhat::Hold { id } => json!({"command": "hold", "id": id}),
                QueueWhat::Release { id } => json!({"command": "release", "id": id}),
                QueueWhat::Delete { id } => json!({"command": "delete", "id": id}),
                QueueWhat::Bounce { id } => json!({"command": "bounce", "id": id}),
            };
            let v = call("POST", "/api/queue", Some(request))?;
            let reply: portcullis_mta::control::QueueReply =
                serde_json::from_value(v).map_err(|e| format!("unexpected answer: {e}"))?;
            crate::queue_print::reply(global.json, &reply, true)
        }
        CtlCommand::Tls(TlsWhat::Exemptions(ExemptionsWhat::List)) => show(
            call("GET", "/api/tls/exemptions", None)?,
            &ctl_print::exemptions,
        ),
        CtlCommand::Tls(TlsWhat::Exemptions(ExemptionsWhat::Clear { host })) => show(
            call(
                "POST",
                "/api/tls/exemptions/clear",
                Some(json!({ "host": host })),
            )?,
            &result_line,
        ),
        CtlCommand::MtaSts(StsWhat::Cache(CacheWhat::List)) => show(
            call("GET", "/api/mta-sts/cache", None)?,
            &ctl_print::sts_cache,
        ),
        CtlCommand::MtaSts(StsWhat::Cache(CacheWhat::Flush { domain })) => show(
            call(
                "POST",
                "/api/mta-sts/cache/flush",
                Some(json!({ "domain": domain })),
            )?,
            &result_line,
        ),
        CtlCommand::TlsReport(TlsReportWhat::Send { day }) => {
            let v = call("POST", "/api/tls-report/send", Some(json!({ "day": day })))?;
            show(v.clone(), &ctl_print::tls_reports_sent)?;
            let failed = v["reports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| r["sent"] == false)
                .count();
            if failed > 0 {
                return Err(format!("{failed} report(s) not delivered; see above"));
            }
            Ok(())
        }
        CtlCommand::Cluster(crate::ctl_args::ClusterWhat::Status) => show(
            call("GET", "/api/cluster", None)?,
            &|v: &serde_json::Value| {
                let rows: Vec<portcullis_mta::cluster::nodes::NodeRow> =
                    serde_json::from_value(v["nodes"].clone()).unwrap_or_default();
                crate::cluster_cmd::table(&rows, v["config_version"].as_i64().unwrap_or(0))
            },
        ),
        CtlCommand::NeverDowngrade(NeverDowngradeWhat::List) => show(
            call("GET", "/api/never-downgrade", None)?,
            &crate::ctl_never_downgrade::list,
        ),
        CtlCommand::NeverDowngrade(NeverDowngradeWhat::Forget { domain }) => show(
            call(
                "POST",
                "/api/never-downgrade/forget",
                Some(json!({ "domain": domain })),
            )?,
            &result_line,
        ),
        CtlCommand::Dns(DnsWhat::Flush) => {
            show(call("POST", "/api/dns/flush", None)?, &result_line)
        }
        CtlCommand::Config(ConfigWhat::Export {
            mask: _,
            encrypt,
            plain,
            passphrase_file,
            output,
        }) => {
            let secrets = if encrypt || plain { "plain" } else { "mask" };
            let v = call("GET", &format!("/api/config?secrets={secrets}"), None)?;
            let mut text = v["text"].as_str().unwrap_or_default().to_owned();
            if encrypt {
                let p = passphrase(passphrase_file.as_ref())?;
                text = portcullis_mta::config::secrets::encrypt(&text, &p)?;
            }
            match output {
                Some(f) => crate::output::write_output(&f, text.as_bytes(), true),
                None => {
                    print!("{text}");
                    Ok(())
                }
            }
        }
        CtlCommand::Config(ConfigWhat::Import {
            file,
            section,
            passphrase_file,
        }) => {
            let mut text = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            if portcullis_mta::config::secrets::has_encrypted(&text) {
                let p = passphrase(passphrase_file.as_ref())
                    .map_err(|e| format!("{} has encrypted secrets; {e}", file.display()))?;
                text = portcullis_mta::config::secrets::decrypt(&text, &p)
                    .map_err(|e| format!("{}: {e}", file.display()))?;
            }
            let body = json!({
                "text": text,
                "name": file.display().to_string(),
                "section": section,
            });
            show(
                call("POST", "/api/config/import", Some(body))?,
                &ctl_print::reload,
            )
        }
        CtlCommand::Config(ConfigWhat::Reset { section }) => show(
            call(
                "POST",
                "/api/config/reset",
                Some(json!({ "section": section })),
            )?,
            &ctl_print::reload,
        ),
        CtlCommand::Token(TokenWhat::Create { name, role }) => show(
            call(
                "POST",
                "/api/tokens",
                Some(json!({ "name": name, "role": role })),
            )?,
            &|v| {
                format!(
                    "{}\n(token {:?}, role {}: shown only now; the gateway keeps only its hash)",
                    v["token"].as_str().unwrap_or_default(),
                    v["name"].as_str().unwrap_or_default(),
                    v["role"].as_str().unwrap_or_default()
                )
            },
        ),
        CtlCommand::Token(TokenWhat::List) => {
            show(call("GET", "/api/tokens", None)?, &ctl_print::tokens)
        }
        CtlCommand::Token(TokenWhat::Revoke { name }) => show(
            call(
                "POST",
                &format!("/api/tokens/{}/revoke", path_part(&name)),
                None,
            )?,
            &result_line,
        ),
    }
}

/// Percent-encodes a name for a URL path.
fn path_part(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The JSON of a 2xx answer; otherwise the error (and problems) as text.
pub(crate) fn check(answer: Answer) -> Result<Value, String> {
    let v = answer.json()?;
    if (200..300).contains(&answer.status) {
        return Ok(v);
    }
    if let Some(problems) = v["problems"].as_array() {
        for p in problems {
            if let Some(p) = p.as_str() {
                eprintln!("{p}");
            }
        }
    }
    Err(format!(
        "{} ({})",
        v["error"]
            .as_str()
            .unwrap_or("the gateway refused the request"),
        answer.status
    ))
}
