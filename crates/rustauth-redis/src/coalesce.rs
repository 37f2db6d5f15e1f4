//! Opt-in write coalescing ("auto-pipelining") on a standalone server: the commands that
//! callers issue while one of them yields go out together as one redis-rs pipeline, one
//! write, each caller getting its own reply.
//!
//! There is no task of its own. The first caller to find the queue without a leader
//! becomes the leader. With nothing in flight it sends at once (as Nagle's algorithm
//! does: a lone caller pays no delay), and on tokio's current-thread runtime too (see
//! [`current_thread`]); otherwise it yields once, so that the tasks runnable beside it
//! queue their commands too, then takes the queue. A queue of one (its own command) it sends itself;
//! a larger one goes out from a task spawned for it, so that no caller's cancellation can
//! lose the others' commands. A leader dropped while it yields hands its queue to such a
//! task as well.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use redis::aio::ConnectionManager;
use redis::{RedisResult, Value};
use tokio::sync::oneshot;

type Reply = oneshot::Sender<RedisResult<Value>>;

/// What waits for the leader.
#[derive(Default)]
struct Queue {
    cmds: Vec<redis::Cmd>,
    replies: Vec<Reply>,
    led: bool,
}

/// The queue shared by every caller of one connection.
#[derive(Default)]
pub(crate) struct Coalescer {
    queue: Arc<Mutex<Queue>>,
    /// Commands sent and not yet answered.
    in_flight: Arc<AtomicUsize>,
}

/// What [`Coalescer::send`] ends with: the reply, or `None` when the connection closed
/// before the command was sent.
pub(crate) type Outcome = Option<RedisResult<Value>>;

impl Coalescer {
    /// Sends `cmd` together with the commands queued beside it, on the manager that
    /// `manager` returns if this caller sends (`None`: closed).
    pub(crate) async fn send<F>(&self, cmd: redis::Cmd, manager: F) -> Outcome
    where
        F: FnOnce() -> Option<ConnectionManager>,
    {
        let direct = self.in_flight.load(Ordering::Relaxed) == 0 || current_thread();
        let queued = {
            let mut q = lock(&self.queue);
            if direct && !q.led {
                Err(cmd)
            } else {
                let (reply, answer) = oneshot::channel();
                q.cmds.push(cmd);
                q.replies.push(reply);
                Ok((!std::mem::replace(&mut q.led, true), answer))
            }
        };
        let answer = match queued {
            // Nothing to wait for and no one gathering: sent at once, from here.
            Err(cmd) => {
                let mut manager = manager()?;
                let _counted = InFlight::new(&self.in_flight, 1);
                return Some(manager.send_packed_command(&cmd).await);
            }
            Ok((false, answer)) => return answer.await.ok(),
            Ok((true, answer)) => answer,
        };
        let mut guard = Leader {
            queue: Some(self.queue.clone()),
            manager: manager(),
            in_flight: self.in_flight.clone(),
        };
        tokio::task::yield_now().await;
        let (cmds, mut replies) = guard.take();
        let manager = guard.manager.take();
        if cmds.len() == 1 {
            // Only this caller's command: sent here, no task.
            drop(replies.pop());
            let mut manager = manager?;
            let _counted = InFlight::new(&self.in_flight, 1);
            return Some(manager.send_packed_command(&cmds[0]).await);
        }
        match manager {
            Some(manager) => {
                let counted = InFlight::new(&self.in_flight, cmds.len());
                tokio::spawn(send_batch(manager, cmds, replies, counted));
            }
            // Closed: dropping the replies tells every caller.
            None => drop(replies),
        }
        answer.await.ok()
    }
}

/// Whether this runs on tokio's current-thread runtime. There, redis-rs's driver task
/// already writes every command that the other tasks queued before it ran, in one write;
/// a yield would only add a pass of the scheduler, so the leader sends at once.
fn current_thread() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread)
}

fn lock(queue: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    // A poisoned lock only means a panic elsewhere while it was held; the queue is whole.
    queue.lock().unwrap_or_else(|p| p.into_inner())
}

/// The leader's hold on the queue: taken after the yield, or on drop handed to a task.
struct Leader {
    queue: Option<Arc<Mutex<Queue>>>,
    manager: Option<ConnectionManager>,
    in_flight: Arc<AtomicUsize>,
}

/// Commands counted in flight until this is dropped.
struct InFlight {
    count: Arc<AtomicUsize>,
    n: usize,
}

impl InFlight {
    fn new(count: &Arc<AtomicUsize>, n: usize) -> Self {
        count.fetch_add(n, Ordering::Relaxed);
        InFlight {
            count: count.clone(),
            n,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.count.fetch_sub(self.n, Ordering::Relaxed);
    }
}

impl Leader {
    fn take(&mut self) -> (Vec<redis::Cmd>, Vec<Reply>) {
        let Some(queue) = self.queue.take() else {
            return (Vec::new(), Vec::new());
        };
        let mut q = lock(&queue);
        q.led = false;
        (std::mem::take(&mut q.cmds), std::mem::take(&mut q.replies))
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        if self.queue.is_none() {
            return;
        }
        let (cmds, replies) = self.take();
        let manager = self.manager.take();
        if let (Some(manager), false) = (manager, cmds.is_empty()) {
            let counted = InFlight::new(&self.in_flight, cmds.len());
            tokio::spawn(send_batch(manager, cmds, replies, counted));
        }
    }
}

/// Sends `cmds` as one pipeline and answers each caller with its own reply.
async fn send_batch(
    mut manager: ConnectionManager,
    cmds: Vec<redis::Cmd>,
    replies: Vec<Reply>,
    counted: InFlight,
) {
    let count = cmds.len();
    let mut pipe = redis::Pipeline::with_capacity(count);
    for cmd in cmds {
        pipe.add_command(cmd);
    }
    let result = manager.send_packed_commands(&pipe, 0, count).await;
    drop(counted);
    match result {
        Ok(values) if values.len() == count => {
            for (reply, value) in replies.into_iter().zip(values) {
                let _ = reply.send(Ok(value));
            }
        }
        Ok(values) => {
            let e = redis::RedisError::from((
                redis::ErrorKind::Parse,
                "a pipeline answered with the wrong number of replies",
                format!("{} for {count} commands", values.len()),
            ));
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
