//! The peer clients: redis-py and ioredis writer scripts (committed under
//! `bench/bench-peers/`), run with packages installed into the git-ignored `bench-peers/` at
//! the repository root (a Python venv and a `node_modules`), installed there when missing.

use super::error::{Result, err};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The redis-py release the benchmark installs.
pub(crate) const REDIS_PY: &str = "8.1.0";
/// The ioredis release the benchmark installs.
pub(crate) const IOREDIS: &str = "6.0.0";

/// Where the peers run from, and their versions.
#[derive(Debug, Clone)]
pub(crate) struct Peers {
    /// The venv's Python, if redis-py is needed.
    pub(crate) python: Option<PathBuf>,
    /// `node`, if ioredis is needed.
    pub(crate) node: Option<PathBuf>,
    /// The `node_modules` holding ioredis.
    pub(crate) node_path: PathBuf,
    /// `bench/bench-peers`, the scripts.
    pub(crate) scripts: PathBuf,
    /// (component, version) for the report.
    pub(crate) versions: Vec<(String, String)>,
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .map_err(|e| err(format!("cannot run {cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn run(cmd: &mut Command) -> Result<()> {
    output(cmd).map(drop)
}

fn redis_py_version(python: &Path) -> Option<String> {
    output(Command::new(python).args(["-c", "import redis; print(redis.__version__)"])).ok()
}

fn ioredis_version(node_modules: &Path) -> Option<String> {
    let text = std::fs::read_to_string(node_modules.join("ioredis/package.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get("version")?.as_str().map(str::to_owned)
}

/// Finds, or installs into `<root>/bench-peers`, what the wanted peers need; says so on stderr
/// when it installs.
pub(crate) fn ensure(root: &Path, python: bool, node: bool) -> Result<Peers> {
    let dir = root.join("bench-peers");
    let mut peers = Peers {
        python: None,
        node: None,
        node_path: dir.join("node_modules"),
        scripts: root.join("bench/bench-peers"),
        versions: Vec::new(),
    };
    if python {
        let venv = dir.join("venv");
        let py = venv.join("bin/python");
        if redis_py_version(&py).as_deref() != Some(REDIS_PY) {
            eprintln!(
                "failover-bench: redis-py {REDIS_PY} missing: installing it into {} (pip)",
                venv.display()
            );
            if !py.exists() {
                run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
            }
            run(Command::new(&py).args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                &format!("redis=={REDIS_PY}"),
            ]))?;
        }
        let version = redis_py_version(&py)
            .ok_or_else(|| err(format!("redis-py does not import in {}", venv.display())))?;
        peers.versions.push(("redis-py".into(), version));
        peers
            .versions
            .push(("Python".into(), output(Command::new(&py).arg("--version"))?));
        peers.python = Some(py);
    }
    if node {
        if ioredis_version(&peers.node_path).as_deref() != Some(IOREDIS) {
            eprintln!(
                "failover-bench: ioredis {IOREDIS} missing: installing it into {} (npm)",
                peers.node_path.display()
            );
            std::fs::create_dir_all(&dir)?;
            run(Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
                .arg("--prefix")
                .arg(&dir)
                .arg(format!("ioredis@{IOREDIS}")))?;
        }
        let version = ioredis_version(&peers.node_path)
            .ok_or_else(|| err(format!("ioredis missing in {}", peers.node_path.display())))?;
        peers.versions.push(("ioredis".into(), version));
        peers.versions.push((
            "Node".into(),
            output(Command::new("node").arg("--version"))?,
        ));
        peers.node = Some(PathBuf::from("node"));
    }
    Ok(peers)
}

impl Peers {
    /// The command of a peer writer (`redis-py`, `ioredis`, `ioredis-detector`), without the
    /// deployment arguments.
    pub(crate) fn writer(&self, client: &str) -> Result<Command> {
        match client {
            "redis-py" => {
                let py = self
                    .python
                    .as_ref()
                    .ok_or_else(|| err("redis-py was not prepared"))?;
                let mut cmd = Command::new(py);
                cmd.arg(self.scripts.join("writer.py"));
                Ok(cmd)
            }
            "ioredis" | "ioredis-detector" => {
                let node = self
                    .node
                    .as_ref()
                    .ok_or_else(|| err("ioredis was not prepared"))?;
                let mut cmd = Command::new(node);
                cmd.arg(self.scripts.join("writer.js"))
                    .env("NODE_PATH", &self.node_path);
                if client == "ioredis-detector" {
                    cmd.arg("--failover-detector");
                }
                Ok(cmd)
            }
            other => Err(err(format!("`{other}` is not a peer script"))),
        }
    }
}
