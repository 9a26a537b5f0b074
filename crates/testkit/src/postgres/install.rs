//! Where the PostgreSQL binaries are and as whom they run.
//!
//! `initdb`, `pg_ctl` and `postgres` refuse to run as root, and the tests
//! run as root in CI, so there they run as the `postgres` system user (made
//! by the Debian package) through `runuser`; anyone else runs them as
//! themselves.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// The binaries of the newest installed major version, and the user to run
/// the server programs as.
#[derive(Debug, Clone)]
pub(super) struct Install {
    pub(super) bin: PathBuf,
    /// `Some((uid, gid))` of `postgres` when we are root.
    pub(super) run_as: Option<(u32, u32)>,
}

/// Debian installs each major version side by side under this directory.
const ROOT: &str = "/usr/lib/postgresql";

/// The server programs the fixture needs; a directory with only `psql`
/// (a `postgresql-client-NN` package) does not count.
const SERVER_PROGRAMS: [&str; 4] = ["initdb", "pg_ctl", "postgres", "psql"];

/// The `bin` directory of the newest major version with the server
/// installed, if any.
pub(super) fn bin_dir() -> Option<PathBuf> {
    let entries = std::fs::read_dir(ROOT).ok()?;
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = version_key(&e.file_name().to_string_lossy())?;
            let bin = e.path().join("bin");
            let complete = SERVER_PROGRAMS.iter().all(|p| bin.join(p).is_file());
            complete.then_some((version, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

/// "15" → [15]; "9.6" → [9, 6]: numeric, so 10 sorts above 9.6.
fn version_key(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|p| p.parse().ok()).collect()
}

impl Install {
    /// Finds the binaries and, when root, the `postgres` user.
    pub(super) fn find() -> Result<Self, Error> {
        let bin = bin_dir().ok_or_else(|| {
            Error::Other(format!(
                "PostgreSQL is not installed: no {ROOT}/*/bin with {SERVER_PROGRAMS:?}; \
                 install the Debian package `postgresql` (scripts/install-test-deps.sh)"
            ))
        })?;
        let run_as = if id(&["-u"])? == 0 {
            Some((id(&["-u", "postgres"])?, id(&["-g", "postgres"])?))
        } else {
            None
        };
        Ok(Self { bin, run_as })
    }

    /// A server program (`initdb`, `pg_ctl`), as `postgres` when root.
    pub(super) fn server(&self, program: &str, cwd: &Path) -> Command {
        let path = self.bin.join(program);
        let mut cmd = if self.run_as.is_some() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        // The programs resolve their own directory; a cwd the postgres user
        // cannot enter (root's) makes them fail.
        cmd.current_dir(cwd);
        scrub_env(&mut cmd);
        cmd
    }

    /// `psql`, as whoever we are (a client has no root check).
    pub(super) fn psql(&self, cwd: &Path) -> Command {
        let mut cmd = Command::new(self.bin.join("psql"));
        cmd.current_dir(cwd);
        scrub_env(&mut cmd);
        cmd
    }

    /// Gives a file or directory we created to the user the server runs
    /// as (a no-op when that is us).
    pub(super) fn give(&self, path: &Path) -> Result<(), Error> {
        match self.run_as {
            Some((uid, gid)) => std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(Error::io(format!("giving {} to postgres", path.display()))),
            None => Ok(()),
        }
    }
}

/// Drops the caller's `PG*` variables (PGHOST, PGPORT, PGDATA, PGSSLMODE,
/// PGSERVICE...): libpq and the server programs read them, and the fixture
/// says everything on the command line instead.
fn scrub_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
}

/// `id ARGS` as a number.
fn id(args: &[&str]) -> Result<u32, Error> {
    let out = Command::new("id")
        .args(args)
        .output()
        .map_err(|e| Error::Program {
            program: "id".into(),
            detail: e.to_string(),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.trim().parse() {
        Ok(n) if out.status.success() => Ok(n),
        _ => Err(Error::Program {
            program: format!("id {}", args.join(" ")),
            detail: format!(
                "{}: {} (the `postgres` user comes with the Debian package `postgresql`)",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::version_key;

    #[test]
    fn versions_sort_numerically() {
        assert!(version_key("10") > version_key("9.6"));
        assert!(version_key("16") > version_key("15"));
        assert_eq!(version_key("common"), None);
    }
}
