//! `rate_limit: {interval, burst}`: the toolkit's token bucket
//! (golang.org/x/time/rate with `rate.Every(interval)` and `burst`): one
//! token every `interval`, at most `burst` stored; a request without a
//! token is answered 429. A burst of 0 refuses every request, as in Go.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RateLimiter {
    interval: Duration,
    burst: u32,
    /// Tokens available and when they were counted.
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub fn new(interval: Duration, burst: u32) -> Self {
        Self {
            interval,
            burst,
            state: Mutex::new((f64::from(burst), Instant::now())),
        }
    }

    /// Take a token if there is one.
    pub fn allow(&self) -> bool {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = now.saturating_duration_since(s.1);
        let refill = elapsed.as_secs_f64() / self.interval.as_secs_f64();
        s.0 = (s.0 + refill).min(f64::from(self.burst));
        s.1 = now;
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket() {
        let t0 = Instant::now();
        let r = RateLimiter::new(Duration::from_secs(1), 2);
        assert!(r.allow_at(t0));
        assert!(r.allow_at(t0));
        assert!(!r.allow_at(t0));
        assert!(!r.allow_at(t0 + Duration::from_millis(500)));
        assert!(r.allow_at(t0 + Duration::from_millis(1000)));
        assert!(!r.allow_at(t0 + Duration::from_millis(1100)));
        let zero = RateLimiter::new(Duration::from_secs(1), 0);
        assert!(!zero.allow_at(t0 + Duration::from_secs(10)));
    }
}
