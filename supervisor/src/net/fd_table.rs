//! Room in the process's descriptor table, made when a supervisor starts rather than in the
//! middle of a switch.
//!
//! Linux grows a process's file-descriptor table by doubling it when a new descriptor does not
//! fit, and in a multi-threaded process it waits for an RCU grace period while doing so
//! (`synchronize_rcu` in `expand_fdtable`): every thread that opens a socket meanwhile blocks
//! too. Here a grace period stalls both runtime threads for 6-12 ms. A switch opens each
//! supervisor's new master connection before its old one closes, so a process that hosts
//! hundreds of supervisors crossed a doubling in the middle of every switch and stopped for
//! that long (seen with `perf` in the fleet benchmark: both workers in `expand_files`).
//!
//! So each supervisor, once it started, makes the table hold twice the descriptors in use
//! plus 64, within the process's `RLIMIT_NOFILE`: the table never shrinks, so this costs at
//! most one grace period per doubling, at start, and 8 bytes per slot. Elsewhere than on Linux
//! it does nothing.

/// Grows the descriptor table to twice the descriptors in use plus 64 (within the process's
/// limit), unless it is that large already. Blocks the calling thread for an RCU grace period
/// when the table grows.
#[cfg(target_os = "linux")]
pub(crate) fn make_room() {
    use std::os::fd::AsRawFd;
    use tracing::debug;
    // Any descriptor serves to duplicate: an unbound socket touches nothing.
    let Ok(probe) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    // The lowest free descriptor: about the number in use. Closed when dropped.
    let Ok(lowest) = rustix::io::fcntl_dupfd_cloexec(&probe, 0) else {
        return;
    };
    let in_use = i64::from(lowest.as_raw_fd());
    drop(lowest);
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
    let want = (2 * in_use + 64).min(limit - 1);
    let Ok(want) = i32::try_from(want) else {
        return;
    };
    if i64::from(want) <= in_use {
        return;
    }
    // A duplicate numbered `want` or above makes the table hold it (growing it if it was
    // smaller); closed at once.
    match rustix::io::fcntl_dupfd_cloexec(&probe, want) {
        Ok(_) => debug!(
            in_use,
            room = want,
            "descriptor table holds room for the connections of a switch"
        ),
        Err(e) => debug!(in_use, room = want, error = %e, "descriptor table not grown"),
    }
}

/// Nothing to do: the stall this avoids is Linux's.
#[cfg(not(target_os = "linux"))]
pub(crate) fn make_room() {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::make_room;

    /// `FDSize` of `/proc/self/status`: the slots in the process's descriptor table.
    fn table_size() -> i64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("FDSize:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("FDSize")
    }

    #[test]
    fn the_table_holds_twice_the_descriptors_in_use() {
        // Enough descriptors that twice their number exceeds the table's first size (64) and
        // the size this test process may already have.
        let before = table_size();
        let held: Vec<_> = (0..before)
            .map(|_| std::os::unix::net::UnixDatagram::unbound().expect("socket"))
            .collect();
        let in_use = {
            use std::os::fd::AsRawFd;
            i64::from(held.last().expect("held").as_raw_fd())
        };
        make_room();
        assert!(
            table_size() >= 2 * in_use,
            "FDSize {} for {in_use} descriptors in use",
            table_size()
        );
    }
}
