//! [`ApalisConnection`]: the connection apalis-redis storage runs on.

use dramatiq_sentinel_supervisor::{Cause, MasterConnection};
use redis::aio::ConnectionLike;
use redis::{Arg, Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use std::future::Future;
use tracing::{debug, info};

/// How many times one command is sent again after a failover cut it.
const RESENDS: usize = 2;

/// The error of apalis-redis's acknowledgement script (`handle_results.lua`) for a task that
/// is not in the acknowledging worker's in-flight set.
const NOT_IN_FLIGHT: &str = "task not executed by worker";

/// A [`MasterConnection`] for apalis-redis: `RedisStorage<Args, ApalisConnection>`.
///
/// Everything the master handle does applies (commands held while a failover is in progress,
/// sent to the verified new master, every connection to the old one closed). In addition, a
/// command that a failover cut after it was sent is sent again, at most twice, through the
/// hold (so to the new master): one that was in flight on the old master when the supervisor
/// switched (`ConnectionAborted`), or on a connection that broke before the reply (a killed
/// master). apalis-redis stops a worker for good at its first Redis error, and leaves the
/// tasks that worker had fetched in its in-flight set until another worker declares it dead
/// (`heartbeat_interval × missed_heartbeats`, five minutes by default), so without the resend
/// every master kill or freeze under load would stop workers and strand tasks.
///
/// Why a resend is safe for apalis-redis's commands (Lua scripts): a command cut by a switch
/// did not take effect on the data the new master has. Sentinel does not pause the old
/// master during `SENTINEL FAILOVER`; the supervisor's fence does the work: from the first
/// early signal no command is sent to it, and the ones sent before are answered within
/// milliseconds, long before the switch (hundreds of milliseconds later) could cut them, so a
/// write still unanswered at the switch is one the old master did not run in time to
/// replicate before the promotion; a frozen master that runs its buffered commands when thawed is demoted and resynchronised
/// from the new master, which drops them. Only a master killed in the instant between running
/// a command and sending its reply, with that write already replicated, makes a resend run it
/// twice (apalis-redis would then see a fetched batch twice in the in-flight set, or fail the
/// second acknowledgement); Redis sends the reply and the replication stream together, so that
/// window is a few microseconds (CI met it). The second acknowledgement is recognised: a
/// resent acknowledgement whose first task is no longer in the worker's in-flight set (the
/// script's "task not executed by worker" error) was run by the send the failover cut, and
/// reached the new master with it (a script runs and replicates as a whole), so it is
/// answered as done (`0`, the count apalis-redis does not read), logged at `info`, instead of
/// stopping the worker; also when the new master first refused it with `NOSCRIPT` (Redis does
/// not replicate its script cache) and the `redis` crate loaded the script and sent it once
/// more. A fetch run twice that way still leaves the first batch in the worker's in-flight set
/// until the worker restarts.
///
/// Not resent: errors the server returned, timeouts (`command_timeout`: the command may still
/// run), a failover that held the command for the whole `hold_timeout`, a master unreachable
/// for `hold_timeout`, and commands after the supervisor stopped. Those reach apalis, which
/// stops the worker. Keep `command_timeout` above the time your sentinels take to fail over
/// a frozen master (`down-after-milliseconds` plus a second or two) if workers must survive a
/// freeze; the default 5 s covers a `down-after` of up to about 3 s.
#[derive(Debug)]
pub struct ApalisConnection {
    master: MasterConnection,
    resent: Resent,
}

impl Clone for ApalisConnection {
    /// Another connection on the same master handle, with no command of this one's pending.
    fn clone(&self) -> Self {
        Self::new(self.master.clone())
    }
}

impl ApalisConnection {
    /// apalis-redis's connection on `master` (a clone of the supervisor's master handle: every
    /// storage shares its multiplexed connection).
    pub fn new(master: MasterConnection) -> Self {
        Self {
            master,
            resent: Resent::default(),
        }
    }

    /// The master handle underneath.
    pub fn master(&self) -> &MasterConnection {
        &self.master
    }
}

impl From<MasterConnection> for ApalisConnection {
    fn from(master: MasterConnection) -> Self {
        Self::new(master)
    }
}

/// Whether `error` says the command was cut by a failover after it was sent: the master
/// moved away with it in flight ([`Cause::Moved`]), or the connection broke before the reply
/// ([`Cause::Broke`]). Not: the master stayed unreachable, or no verified master, for the hold
/// timeout, a timeout, a stopped supervisor, or any error the master handle did not make.
pub(crate) fn cut_by_failover(error: &RedisError) -> bool {
    matches!(Cause::of(error), Some(Cause::Moved | Cause::Broke))
}

/// Runs `send` on `handle` and sends again, at most [`RESENDS`] times, while a failover cut it
/// and the supervisor has not `stopped`. Returns the last result, and whether it is the reply
/// to a command sent again. `send` gives the handle back with its result, so its future can
/// borrow the handle without a clone per command.
async fn resend<'m, H, T, Fut>(
    what: &str,
    handle: &'m mut H,
    stopped: impl Fn(&H) -> bool,
    send: impl Fn(&'m mut H) -> Fut,
) -> (RedisResult<T>, bool)
where
    Fut: Future<Output = (&'m mut H, RedisResult<T>)>,
{
    let mut resent = 0;
    let mut handle = handle;
    loop {
        let (back, result) = send(handle).await;
        handle = back;
        match result {
            Err(e) if resent < RESENDS && cut_by_failover(&e) && !stopped(handle) => {
                resent += 1;
                debug!(error = %e, resent, what, "apalis command cut by a failover: sent again");
            }
            other => return (other, resent > 0),
        }
    }
}

/// The server error a reply is, if it is one.
fn server_error(result: &RedisResult<Value>) -> Option<(&str, Option<&str>)> {
    match result {
        Ok(Value::ServerError(e)) => Some((e.code(), e.details())),
        Err(e) => e.code().map(|code| (code, e.detail())),
        Ok(_) => None,
    }
}

/// What a connection reads in the replies to commands it sent again after a failover cut
/// them (see [`ApalisConnection`]). Keeps the one the new master refused with `NOSCRIPT`,
/// packed: the `redis` crate's script call then loads the script (`SCRIPT LOAD`) and sends
/// the same bytes once more, which is still that command sent again.
#[derive(Debug, Default)]
struct Resent(Option<Vec<u8>>);

impl Resent {
    /// Whether `cmd` is the command kept. What is kept is dropped by any command but the
    /// `SCRIPT LOAD` in between.
    fn continued_by(&mut self, cmd: &Cmd) -> bool {
        let Some(bytes) = self.0.take() else {
            return false;
        };
        let first = cmd.args_iter().next();
        if matches!(first, Some(Arg::Simple(a)) if a.eq_ignore_ascii_case(b"SCRIPT")) {
            self.0 = Some(bytes);
            return false;
        }
        cmd.get_packed_command() == bytes
    }

    /// The reply to `cmd`, sent `again` after a failover cut it (or continuing such a
    /// command): a `NOSCRIPT` refusal is kept for the next send; an acknowledgement that found
    /// its task no longer in flight ran the first time, so it is done; anything else is
    /// returned as it is.
    fn reply(&mut self, cmd: &Cmd, again: bool, result: RedisResult<Value>) -> RedisResult<Value> {
        if !again {
            return result;
        }
        match server_error(&result) {
            Some(("NOSCRIPT", _)) => self.0 = Some(cmd.get_packed_command()),
            Some((_, Some(detail))) if detail.contains(NOT_IN_FLIGHT) => {
                info!(
                    "apalis acknowledgement sent again after a failover cut it had already \
                     run: the first send reached the new master, so it is done"
                );
                return Ok(Value::Int(0));
            }
            _ => {}
        }
        result
    }
}

/// Whether the supervisor of `master` stopped (it has no master any more).
fn stopped(master: &MasterConnection) -> bool {
    master.node().is_none()
}

impl ConnectionLike for ApalisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        // The handle's own (unboxed) send: one boxed future per command, as on a plain
        // connection, and the handle keeps its connection from one command to the next.
        Box::pin(async move {
            let continued = self.resent.continued_by(cmd);
            let send = move |m: &'a mut MasterConnection| async move {
                let result = m.send_packed_command(cmd).await;
                (m, result)
            };
            let (result, resent) = resend("command", &mut self.master, stopped, send).await;
            self.resent.reply(cmd, resent || continued, result)
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let send = move |m: &'a mut MasterConnection| async move {
                let result = m.send_packed_commands(pipeline, offset, count).await;
                (m, result)
            };
            resend("pipeline", &mut self.master, stopped, send).await.0
        })
    }

    fn get_db(&self) -> i64 {
        self.master.get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn cut() -> RedisError {
        Cause::Moved.error("test")
    }

    #[test]
    fn resends_only_what_a_failover_cut() {
        assert!(cut_by_failover(&Cause::Moved.error("moved")));
        assert!(cut_by_failover(&Cause::Broke.error("broke")));
        for cause in [
            Cause::Held,
            Cause::Unreachable,
            Cause::NoAnswer,
            Cause::Stopped,
        ] {
            assert!(!cut_by_failover(&cause.error("no")), "{cause:?}");
        }
        // A plain I/O error did not come through the master handle: not ours to judge.
        let plain: RedisError = io::Error::new(io::ErrorKind::ConnectionAborted, "x").into();
        assert!(!cut_by_failover(&plain));
        let server: RedisError = (redis::ErrorKind::Client, "nope").into();
        assert!(!cut_by_failover(&server));
    }

    #[test]
    fn gives_up_after_two_resends() {
        let mut calls = 0_usize;
        let result: RedisResult<()> = futures_executor(resend(
            "test",
            &mut calls,
            |_| false,
            |calls| async move {
                *calls += 1;
                (calls, Err(cut()))
            },
        ))
        .0;
        assert!(result.is_err());
        assert_eq!(calls, 1 + RESENDS);
    }

    #[test]
    fn does_not_resend_once_stopped() {
        let mut calls = 0_usize;
        let result: RedisResult<()> = futures_executor(resend(
            "test",
            &mut calls,
            |_| true,
            |calls| async move {
                *calls += 1;
                (calls, Err(cut()))
            },
        ))
        .0;
        assert!(result.is_err());
        assert_eq!(calls, 1);
    }

    fn reply(bytes: &[u8]) -> Value {
        redis::parse_redis_value(bytes).expect("a reply")
    }

    fn not_in_flight() -> Value {
        reply(b"-ERR user_script:29: task not executed by worker script: 8484d0d3, on @user_script:29.\r\n")
    }

    /// A command's first send cut, then answered: the answer is to a command sent again.
    #[test]
    fn tells_a_reply_to_a_command_sent_again() {
        let mut calls = 0_usize;
        let (result, again) = futures_executor(resend(
            "test",
            &mut calls,
            |_| false,
            |calls| async move {
                *calls += 1;
                let result = if *calls == 1 {
                    Err(cut())
                } else {
                    Ok(Value::Okay)
                };
                (calls, result)
            },
        ));
        assert_eq!((result.ok(), again, calls), (Some(Value::Okay), true, 2));
        let mut calls = 0_usize;
        let (_, again) = futures_executor(resend(
            "test",
            &mut calls,
            |_| false,
            |calls| async move { (calls, Ok(Value::Okay)) },
        ));
        assert!(!again, "sent once");
    }

    /// An acknowledgement sent again after a cut, that finds its task no longer in flight, ran
    /// the first time: done, not an error that would stop the worker, also after the new
    /// master refused it with `NOSCRIPT` and `redis` loaded the script and sent it once more.
    /// Sent once, the same error stays an error, and so does any other error of a command sent
    /// again.
    #[test]
    fn an_acknowledgement_that_already_ran_is_done() {
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha
            .arg("8484d0d3")
            .arg(5)
            .arg("apalis-tasks:inflight:worker-0");
        let mut resent = Resent::default();
        let done = resent.reply(&evalsha, true, Ok(not_in_flight()));
        assert_eq!(done.ok(), Some(Value::Int(0)));
        let first_send = resent.reply(&evalsha, false, Ok(not_in_flight()));
        assert!(matches!(first_send, Ok(Value::ServerError(_))));
        let other = resent.reply(&evalsha, true, Ok(reply(b"-ERR worker not registered\r\n")));
        assert!(matches!(other, Ok(Value::ServerError(_))));

        // Sent again, refused with NOSCRIPT; `redis` loads the script and sends it once more.
        let noscript = reply(b"-NOSCRIPT No matching script.\r\n");
        let refused = resent.reply(&evalsha, true, Ok(noscript.clone()));
        assert!(matches!(refused, Ok(Value::ServerError(_))));
        let mut load = redis::cmd("SCRIPT");
        load.arg("LOAD").arg("return 1");
        assert!(!resent.continued_by(&load), "the load is not the command");
        assert!(resent.continued_by(&evalsha), "the same command, once more");
        let done = resent.reply(&evalsha, true, Ok(not_in_flight()));
        assert_eq!(done.ok(), Some(Value::Int(0)));
        assert!(!resent.continued_by(&evalsha), "only once");

        // Any other command in between: the next send of it is a first send again.
        let _ = resent.reply(&evalsha, true, Ok(noscript));
        assert!(!resent.continued_by(&redis::cmd("PING")));
        assert!(!resent.continued_by(&evalsha));
    }

    /// Polls a future that never waits to completion.
    fn futures_executor<F: Future>(future: F) -> F::Output {
        use std::task::{Context, Poll, Waker};
        let mut future = std::pin::pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }
}
