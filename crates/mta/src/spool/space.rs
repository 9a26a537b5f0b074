//! Free space on the spool's filesystem, and the three decisions made from
//! it, from the most to the least room needed:
//!
//! 1. [`Spool::admit`](super::Spool::admit): a new transaction is refused
//!    (`452 4.3.1` at `MAIL FROM`) when free space is under the operator's
//!    threshold (`min-free-mib`, or `min-free-percent` of the filesystem,
//!    whichever is larger), or when its declared `SIZE=` does not fit above
//!    the threshold;
//! 2. the writer refuses a message whose record would leave less than the
//!    outcome reserve free: that last room is kept for what delivery must
//!    write (outcomes, retry times, bounces) and for compaction;
//! 3. delivery pauses when even outcomes may not fit (see
//!    [`Spool::outcomes_storable`](super::Spool::outcomes_storable)): a
//!    delivery whose outcome cannot be stored would be repeated after a
//!    restart.
//!
//! Every check measures again (one `statvfs`, about a microsecond), so
//! service resumes by itself the moment space is free.

use std::path::{Path, PathBuf};

/// Below this, outcomes may not fit: delivery pauses.
pub(super) const PAUSE_BELOW: u64 = 64 << 10;

/// Space on a filesystem, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeSpace {
    /// Available to the gateway's user.
    pub available: u64,
    /// Size of the filesystem.
    pub total: u64,
}

/// Why a transaction is refused for lack of space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortage {
    pub available: u64,
    pub threshold: u64,
    /// The declared `SIZE=`, when that is what does not fit.
    pub size: Option<u64>,
}

impl std::fmt::Display for Shortage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.size {
            Some(size) => write!(
                f,
                "declared SIZE={size} is more than the {} free on the spool's filesystem above \
                 the {} threshold",
                mib(self.available.saturating_sub(self.threshold)),
                mib(self.threshold)
            ),
            None => write!(
                f,
                "the spool's filesystem has {} free, below the {} threshold (spool.min-free-mib, \
                 spool.min-free-percent)",
                mib(self.available),
                mib(self.threshold)
            ),
        }
    }
}

/// `12.3 MiB`.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// Measures the filesystem holding `dir`.
pub fn measure(dir: &Path) -> std::io::Result<FreeSpace> {
    let s = rustix::fs::statvfs(dir)?;
    let unit = if s.f_frsize > 0 {
        s.f_frsize
    } else {
        s.f_bsize
    };
    Ok(FreeSpace {
        available: s.f_bavail.saturating_mul(unit),
        total: s.f_blocks.saturating_mul(unit),
    })
}

/// The operator's threshold.
#[derive(Debug)]
pub(super) struct Gauge {
    dir: PathBuf,
    min_free_bytes: u64,
    min_free_percent: u8,
}

impl Gauge {
    pub(super) fn new(dir: &Path, min_free_bytes: u64, min_free_percent: u8) -> Self {
        Gauge {
            dir: dir.to_path_buf(),
            min_free_bytes,
            min_free_percent,
        }
    }

    /// The current free space.
    pub(super) fn free(&self) -> std::io::Result<FreeSpace> {
        measure(&self.dir)
    }

    /// The threshold under which transactions are refused.
    pub(super) fn threshold(&self, total: u64) -> u64 {
        let percent = total / 100 * u64::from(self.min_free_percent);
        self.min_free_bytes.max(percent)
    }

    /// Whether a transaction declaring `size` may start. A failed
    /// measurement admits: the writer still refuses what does not fit.
    pub(super) fn admit(&self, size: Option<u64>) -> Result<(), Shortage> {
        let Ok(space) = self.free() else {
            return Ok(());
        };
        let threshold = self.threshold(space.total);
        let shortage = Shortage {
            available: space.available,
            threshold,
            size: None,
        };
        if space.available < threshold {
            return Err(shortage);
        }
        match size {
            Some(size) if size > space.available - threshold => Err(Shortage {
                size: Some(size),
                ..shortage
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_is_the_larger_of_absolute_and_percentage() {
        let g = Gauge::new(Path::new("/"), 10 << 20, 5);
        assert_eq!(g.threshold(100 << 20), 10 << 20);
        assert_eq!(g.threshold(1000 << 20), 50 << 20);
    }

    #[test]
    fn measuring_a_real_directory_works_and_explains_itself() {
        let dir = tempfile::tempdir().unwrap();
        let space = measure(dir.path()).unwrap();
        assert!(space.total >= space.available);
        let huge = Gauge::new(dir.path(), u64::MAX, 0);
        let e = huge.admit(None).unwrap_err();
        assert!(e.to_string().contains("below the"), "{e}");
        let none = Gauge::new(dir.path(), 0, 0);
        assert!(none.admit(Some(1)).is_ok());
        let e = none.admit(Some(u64::MAX)).unwrap_err();
        assert!(e.to_string().contains("SIZE="), "{e}");
    }
}
