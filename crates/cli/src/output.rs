//! Printing: human-readable text or `--json`, and the one-line error every
//! failing command ends with (on stderr, exit status 1).

use std::process::ExitCode;

use serde::Serialize;

/// What a command returns: `Ok` after printing its result, or a one-line reason.
pub type CmdResult = Result<(), String>;

/// Print `value` as pretty JSON, or the text `human` builds.
pub fn emit<T: Serialize>(json: bool, value: &T, human: impl FnOnce() -> String) -> CmdResult {
    if json {
        let text =
            serde_json::to_string_pretty(value).map_err(|e| format!("cannot print JSON: {e}"))?;
        println!("{text}");
    } else {
        let text = human();
        if !text.is_empty() {
            println!("{}", text.trim_end());
        }
    }
    Ok(())
}

/// Turn a command's result into the exit status, printing the error line.
pub fn finish(result: CmdResult) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            // One line: a script can grep it, a person can read it.
            eprintln!("portcullis: error: {}", reason.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

/// Map any displayable error to the one-line reason.
pub fn reason(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Read a file the operator named, with the file name in the error.
pub fn read_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Write output the operator asked for (`-` is standard output). Files holding
/// keys are created owner-only.
pub fn write_output(path: &std::path::Path, bytes: &[u8], secret: bool) -> CmdResult {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if path.as_os_str() == "-" {
        return std::io::stdout()
            .write_all(bytes)
            .map_err(|e| format!("cannot write to standard output: {e}"));
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    if secret {
        // An existing file keeps its old mode on open; tighten it.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot restrict permissions of {}: {e}", path.display()))?;
    }
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
