//! A small real filesystem for disk-full tests: a tmpfs of a chosen size
//! mounted on a temporary directory (`mount -t tmpfs`), unmounted when
//! dropped, and a filler file to take its free space away and give it back.
//!
//! Mounting needs root. CI runs as root; elsewhere [`Tmpfs::mount`] returns
//! `Ok(None)` after printing a loud notice, so the test can skip, except
//! when `CI=true`, where a missing mount is an error: a disk-full test that
//! silently skips in CI proves nothing.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// A mounted tmpfs.
#[derive(Debug)]
pub struct Tmpfs {
    dir: tempfile::TempDir,
    mounted: bool,
}

impl Tmpfs {
    /// Mounts a tmpfs of `mib` MiB. `Ok(None)`: not root and not in CI (the
    /// caller skips the test; the reason is printed).
    pub fn mount(mib: u64) -> Result<Option<Tmpfs>, Error> {
        let dir = tempfile::tempdir().map_err(Error::io("creating the tmpfs mount point"))?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output();
        let failure = match out {
            Ok(o) if o.status.success() => {
                return Ok(Some(Tmpfs { dir, mounted: true }));
            }
            Ok(o) => format!(
                "{}: {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => e.to_string(),
        };
        let why = format!(
            "cannot mount a {mib} MiB tmpfs for the disk-full test ({failure}); it needs root"
        );
        if std::env::var("CI").as_deref() == Ok("true") {
            return Err(Error::Other(format!("{why}; CI must run it")));
        }
        eprintln!(
            "\n!!! SKIPPED: {why}. Run the tests as root to cover the full-disk behaviour. !!!\n"
        );
        Ok(None)
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes available on the filesystem.
    pub fn available(&self) -> Result<u64, Error> {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(self.path())
            .output()
            .map_err(Error::io("running df"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| Error::Other(format!("unreadable df output: {text:?}")))
    }

    /// Grows the filler file until at most `leave` bytes stay available
    /// (0: every last byte, until the filesystem says it is full).
    pub fn fill(&self, leave: u64) -> Result<(), Error> {
        let path = self.filler();
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(Error::io("opening the filler file"))?;
        let chunk = vec![0x5a_u8; 64 << 10];
        loop {
            let avail = self.available()?;
            if avail <= leave {
                return Ok(());
            }
            let n = (avail - leave).min(chunk.len() as u64) as usize;
            match f.write_all(&chunk[..n]).and_then(|()| f.sync_data()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => return Ok(()),
                Err(e) => return Err(Error::Io("writing the filler file".into(), e)),
            }
        }
    }

    /// Removes the filler file: its space is free again.
    pub fn free(&self) -> Result<(), Error> {
        match fs::remove_file(self.filler()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::Io("removing the filler file".into(), e))
            }
            _ => Ok(()),
        }
    }

    fn filler(&self) -> PathBuf {
        self.path().join("filler")
    }

    /// Creates a file of `bytes` (to take space without the filler).
    pub fn file(&self, name: &str, bytes: usize) -> Result<PathBuf, Error> {
        let path = self.path().join(name);
        File::create(&path)
            .and_then(|mut f| f.write_all(&vec![0; bytes]))
            .map_err(Error::io(format!("writing {}", path.display())))?;
        Ok(path)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if self.mounted {
            // Lazy: a process still holding a file open (a killed gateway's
            // leftovers) must not keep the mount alive forever.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}
