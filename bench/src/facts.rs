//! The facts about a run that head the report (command, commit, machine, load, versions).

/// Facts about the run for the header.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    pub(crate) command: String,
    /// The commit measured (`git describe --always --dirty`).
    pub(crate) commit: String,
    pub(crate) date: String,
    pub(crate) nproc: usize,
    pub(crate) cpu: String,
    pub(crate) load_start: String,
    pub(crate) load_end: String,
    pub(crate) versions: Vec<(String, String)>,
    pub(crate) reps: usize,
    pub(crate) quick: bool,
    pub(crate) duration_min: f64,
}
