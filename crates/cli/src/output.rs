//! Printing: human-readable text or `--json`, and the one-line error every
//! failing command ends with (on stderr, exit status 1). Standard output is
//! written through [`out()`]: when the reader goes away (`portcullis … | head`)
//! the program ends quietly, as Unix tools do, instead of panicking.

use std::process::ExitCode;

use serde::Serialize;

/// What a command returns: `Ok` after printing its result, or a one-line reason.
pub type CmdResult = Result<(), String>;

/// Writes to standard output. A closed pipe ends the program at once with
/// status 0 (the reader has seen what it wanted); any other write error
/// ends it with status 1 and one line on standard error.
pub fn out(text: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(text).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("portcullis: error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// Print `value` as pretty JSON, or the text `human` builds.
pub fn emit<T: Serialize>(json: bool, value: &T, human: impl FnOnce() -> String) -> CmdResult {
    if json {
        let text =
            serde_json::to_string_pretty(value).map_err(|e| format!("cannot print JSON: {e}"))?;
        outln!("{text}");
    } else {
        let text = human();
        if !text.is_empty() {
            outln!("{}", text.trim_end());
        }
    }
    Ok(())
}

/// The refusal of `--json` by a command whose output is not a result
/// (a configuration file, a script, a running server).
pub fn no_json(what: &str) -> CmdResult {
    Err(format!("--json does not apply here: {what}"))
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
        out(format_args!("{}", String::from_utf8_lossy(bytes)));
        return Ok(());
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
