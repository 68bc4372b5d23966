//! Clocks: where the runner reads the time and how it waits for it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;

/// The source of wall-clock time for a runner.
///
/// The runner reads the time, and sleeps until a time, only through its
/// clock, so tests can move time (jumps, daylight-saving days) with a
/// [`TestClock`] instead of waiting for it.
pub trait Clock: Send + Sync + 'static {
    /// Returns the current time.
    fn now(&self) -> DateTime<Utc>;

    /// Waits until [`now`](Clock::now) reaches `deadline`, or until the
    /// clock jumps, whichever comes first.
    ///
    /// Callers read the time again when it returns and sleep again if they
    /// woke early.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future has no effect on the clock.
    fn sleep_until(&self, deadline: DateTime<Utc>)
        -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(
        &self,
        deadline: DateTime<Utc>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let wait = (deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock that runs at real speed from an offset that tests can move.
///
/// Time flows as on the system clock, so commands and timeouts behave as in
/// production, but [`set`](TestClock::set) and [`advance`](TestClock::advance)
/// jump it forward or back at once and wake every sleeper, the way an NTP
/// correction or a daylight-saving test needs.
///
/// # Examples
///
/// ```
/// use chrono::TimeDelta;
/// use quicksilver::{Clock, TestClock};
///
/// let clock = TestClock::new();
/// let before = clock.now();
/// clock.advance(TimeDelta::hours(3));
/// assert!(clock.now() - before >= TimeDelta::hours(3));
/// ```
#[derive(Debug, Clone)]
pub struct TestClock {
    inner: Arc<TestClockInner>,
}

#[derive(Debug)]
struct TestClockInner {
    offset: Mutex<TimeDelta>,
    jumps: watch::Sender<u64>,
}

impl TestClock {
    /// Creates a clock that starts at the system time.
    pub fn new() -> Self {
        let (jumps, _) = watch::channel(0);
        TestClock {
            inner: Arc::new(TestClockInner {
                offset: Mutex::new(TimeDelta::zero()),
                jumps,
            }),
        }
    }

    /// Creates a clock that starts at `now` and runs on from there.
    pub fn starting_at(now: DateTime<Utc>) -> Self {
        let clock = TestClock::new();
        clock.set(now);
        clock
    }

    /// Moves the clock so that it reads `now`, forward or back.
    pub fn set(&self, now: DateTime<Utc>) {
        self.jump(|_| now - Utc::now());
    }

    /// Moves the clock by `delta`, which may be negative.
    pub fn advance(&self, delta: TimeDelta) {
        self.jump(|offset| offset + delta);
    }

    fn jump(&self, change: impl FnOnce(TimeDelta) -> TimeDelta) {
        {
            let mut offset = self.inner.offset.lock().unwrap_or_else(|e| e.into_inner());
            *offset = change(*offset);
        }
        self.inner.jumps.send_modify(|count| *count += 1);
    }

    fn offset(&self) -> TimeDelta {
        *self.inner.offset.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for TestClock {
    fn default() -> Self {
        TestClock::new()
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset()
    }

    fn sleep_until(
        &self,
        deadline: DateTime<Utc>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let mut jumps = self.inner.jumps.subscribe();
        let wait = (deadline - self.now()).to_std().unwrap_or(Duration::ZERO);
        Box::pin(async move {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = jumps.changed() => {}
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn test_clock_jump_wakes_sleeper() {
        let clock = TestClock::new();
        let far = clock.now() + TimeDelta::hours(1);
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep_until(far).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        clock.advance(TimeDelta::hours(2));
        tokio::time::timeout(Duration::from_secs(2), sleeper)
            .await
            .expect("sleeper woke after the jump")
            .expect("sleeper task did not panic");
        assert!(clock.now() > far);
    }

    #[test]
    fn test_clock_moves_back() {
        let clock = TestClock::new();
        let before = clock.now();
        clock.advance(TimeDelta::days(-1));
        assert!(clock.now() < before - TimeDelta::hours(23));
    }
}
