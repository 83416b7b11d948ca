//! The exit status of `dramatiq-sentinel`, the same for every command.

/// Success: the status was printed; `watch` ended by Ctrl-C or SIGTERM; the drill accounted for
/// every job, none lost or run twice.
pub const OK: u8 = 0;
/// The drill found jobs lost or run twice, or a command failed after it started (the error
/// is printed: an act of the drill's story, the supervisor stopping, the runtime).
pub const FAILED: u8 = 1;
/// Usage error: an unknown option, a bad value, or an invalid supervisor setting (the message
/// names the option or the field).
pub const USAGE: u8 = 2;
/// No sentinel could be reached or none answered (each one is named with the cause: refused,
/// timed out, wrong password, TLS, ...).
pub const UNREACHABLE: u8 = 3;
/// The sentinels answered but do not monitor the service, or (drill) its master could not be
/// verified.
pub const UNKNOWN_SERVICE: u8 = 4;
/// The drill could not complete its accounting (Redis could not be read at the end, or jobs
/// were still unfinished after the drain).
pub const INCOMPLETE: u8 = 5;
/// The drill was interrupted twice: it exited at once, without a summary.
pub const INTERRUPTED: u8 = 130;

/// The table printed by `--help` and documented in the README.
pub const TABLE: &str = "\
EXIT STATUS
    0    success: status printed; watch ended by Ctrl-C/SIGTERM; drill: every job done once
    1    the drill found jobs lost or run twice, or a command failed after it started
    2    usage error: bad option or value, invalid setting (the message names it)
    3    no sentinel reachable or answering (each sentinel named with the cause)
    4    the sentinels do not monitor the service, or (drill) its master failed verification
    5    the drill could not complete its accounting
    130  the drill was interrupted twice and exited without a summary
";
