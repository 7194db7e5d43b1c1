//! Supervision of the delivery threads: each runs a body until delivery stops; a thread
//! that ends before that (a panic its body did not catch) is logged and replaced by a new
//! thread running the same body, after a pause that grows while replacements keep dying
//! young. Depends on nothing of the crate.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A thread's name and what it runs (again, if it dies).
pub struct Body {
    name: String,
    run: Arc<dyn Fn() + Send + Sync>,
}

impl Body {
    pub fn new(name: &str, run: impl Fn() + Send + Sync + 'static) -> Body {
        Body {
            name: name.to_string(),
            run: Arc::new(run),
        }
    }
}

/// Tells the supervisor that thread `0` ended, however it ended (dropped while unwinding
/// too), and takes it off the count of running threads (`2`).
struct Ended(usize, Sender<usize>, Arc<AtomicUsize>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.2.fetch_sub(1, Ordering::SeqCst);
        let _ = self.1.send(self.0);
    }
}

/// A thread that lived at least this long died of something new: its replacement starts
/// without delay.
const YOUNG: Duration = Duration::from_secs(10);
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

struct Slot {
    body: Body,
    handle: Option<JoinHandle<()>>,
    started: Instant,
    pause: Duration,
    /// When a dead thread is due to be replaced.
    respawn_at: Option<Instant>,
}

fn spawn(i: usize, slot: &mut Slot, ended: &Sender<usize>, running: &Arc<AtomicUsize>) -> bool {
    running.fetch_add(1, Ordering::SeqCst);
    let (run, guard) = (
        slot.body.run.clone(),
        Ended(i, ended.clone(), running.clone()),
    );
    match std::thread::Builder::new()
        .name(slot.body.name.clone())
        .spawn(move || {
            let _guard = guard;
            run();
        }) {
        Ok(h) => {
            slot.handle = Some(h);
            slot.started = Instant::now();
            slot.respawn_at = None;
            true
        }
        Err(e) => {
            log::error!("cannot start webhook thread {}: {e}", slot.body.name);
            false
        }
    }
}

/// Starts every body on its own thread and a supervisor thread that keeps them running
/// until `stop` is set; the supervisor ends once they all have. `running` counts the
/// bodies' threads alive at any moment (readiness and metrics read it).
pub fn start(
    bodies: Vec<Body>,
    stop: Arc<AtomicBool>,
    running: Arc<AtomicUsize>,
) -> Option<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("webhooks-supervisor".into())
        .spawn(move || supervise(bodies, &stop, &running))
        .map_err(|e| log::error!("cannot start the webhook supervisor: {e}"))
        .ok()
}

fn supervise(bodies: Vec<Body>, stop: &AtomicBool, running: &Arc<AtomicUsize>) {
    let (ended, rx) = mpsc::channel();
    let now = Instant::now();
    let mut slots: Vec<Slot> = bodies
        .into_iter()
        .map(|body| Slot {
            body,
            handle: None,
            started: now,
            pause: FIRST_PAUSE,
            respawn_at: Some(now),
        })
        .collect();
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let now = Instant::now();
        for (i, slot) in slots.iter_mut().enumerate() {
            let due = slot.respawn_at.is_some_and(|at| at <= now);
            if stopping {
                slot.respawn_at = None;
            } else if due && !spawn(i, slot, &ended, running) {
                slot.respawn_at = Some(now + LONGEST_PAUSE);
            }
        }
        if slots
            .iter()
            .all(|s| s.handle.is_none() && s.respawn_at.is_none())
        {
            return;
        }
        let wait = slots
            .iter()
            .filter_map(|s| s.respawn_at)
            .min()
            .map_or(Duration::from_millis(500), |at| {
                at.saturating_duration_since(now)
            });
        let i = match rx.recv_timeout(wait) {
            Ok(i) => i,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let Some(slot) = slots.get_mut(i) else {
            continue;
        };
        let panicked = slot
            .handle
            .take()
            .map(|h| h.join().is_err())
            .unwrap_or(false);
        if stop.load(Ordering::SeqCst) {
            continue;
        }
        slot.pause = if slot.started.elapsed() >= YOUNG {
            FIRST_PAUSE
        } else {
            (slot.pause * 2).min(LONGEST_PAUSE)
        };
        log::error!(
            "webhook thread {} {}; replacing it in {:?}",
            slot.body.name,
            if panicked { "panicked" } else { "ended" },
            slot.pause
        );
        slot.respawn_at = Some(Instant::now() + slot.pause);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn a_dead_thread_is_replaced_until_stop() {
        let stop = Arc::new(AtomicBool::new(false));
        let runs = Arc::new(AtomicUsize::new(0));
        let (r, s) = (runs.clone(), stop.clone());
        let body = Body::new("test-dies-twice", move || {
            if r.fetch_add(1, Ordering::SeqCst) < 2 {
                panic!("a bug in a delivery thread");
            }
            while !s.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let calm = Arc::new(AtomicUsize::new(0));
        let (c, s2) = (calm.clone(), stop.clone());
        let steady = Body::new("test-steady", move || {
            c.fetch_add(1, Ordering::SeqCst);
            while !s2.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let running = Arc::new(AtomicUsize::new(0));
        let sup = start(vec![body, steady], stop.clone(), running.clone()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while runs.load(Ordering::SeqCst) < 3 {
            assert!(Instant::now() < deadline, "the thread was not replaced");
            std::thread::sleep(Duration::from_millis(10));
        }
        while running.load(Ordering::SeqCst) < 2 {
            assert!(Instant::now() < deadline, "the thread was not replaced");
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::SeqCst);
        sup.join().unwrap();
        assert_eq!(
            running.load(Ordering::SeqCst),
            0,
            "every thread counted out"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 3, "replaced twice, then kept");
        assert_eq!(
            calm.load(Ordering::SeqCst),
            1,
            "the other thread was left alone"
        );
    }
}
