//! The session state machine, as a pure function of events and time (no
//! clock reads, no IO), so every transition is unit-tested.
//!
//! ```text
//!   Connected ──silence > TTL/2 or stream broke──▶ Suspended
//!   Suspended ──keep-alive answered──────────────▶ Reconnected
//!   Reconnected ──silence or stream broke────────▶ Suspended
//!   any ──answer "lease gone" or local deadline passed──▶ Expired (final)
//! ```
//!
//! The local deadline is conservative: it is the send time of the last
//! answered keep-alive plus the TTL the leader reported, which is never later
//! than the leader's own deadline. So the client gives the session up no later
//! than the leader does.

use std::time::Duration;

use tokio::time::Instant;

use crate::session::SessionState;

/// The state of one session and the times that move it.
#[derive(Debug, Clone)]
pub(crate) struct Tracker {
    ttl: Duration,
    state: SessionState,
    /// When the last successful answer arrived (or the session started).
    last_answer: Instant,
    /// When the lease ends unless a keep-alive is answered before.
    deadline: Instant,
}

impl Tracker {
    /// A session whose lease of `ttl` had `remaining` time to live as of a
    /// request sent at `sent` (the grant: `remaining` = `ttl`).
    pub(crate) fn new(ttl: Duration, sent: Instant, remaining: Duration) -> Self {
        Self {
            ttl,
            state: SessionState::Connected,
            last_answer: sent,
            deadline: sent + remaining,
        }
    }

    /// The current state.
    pub(crate) fn state(&self) -> SessionState {
        self.state
    }

    /// A keep-alive sent at `sent` was answered at `now`: the lease lives for
    /// `remaining` from some moment after `sent`.
    pub(crate) fn on_alive(&mut self, now: Instant, sent: Instant, remaining: Duration) {
        if self.state == SessionState::Expired {
            return;
        }
        self.last_answer = now;
        self.deadline = self.deadline.max(sent + remaining);
        if self.state == SessionState::Suspended {
            self.state = SessionState::Reconnected;
        }
    }

    /// The server said the lease is gone.
    pub(crate) fn on_gone(&mut self) {
        self.state = SessionState::Expired;
    }

    /// The keep-alive stream broke (or a member could not be reached).
    pub(crate) fn on_broken(&mut self, now: Instant) {
        self.on_tick(now);
        if matches!(
            self.state,
            SessionState::Connected | SessionState::Reconnected
        ) {
            self.state = SessionState::Suspended;
        }
    }

    /// Time passed: suspends after TTL/2 without an answer, expires at the
    /// local deadline.
    pub(crate) fn on_tick(&mut self, now: Instant) {
        if self.state == SessionState::Expired {
            return;
        }
        if now >= self.deadline {
            self.state = SessionState::Expired;
        } else if now >= self.last_answer + self.ttl / 2 {
            self.state = SessionState::Suspended;
        }
    }

    /// When [`on_tick`](Self::on_tick) may next change the state.
    pub(crate) fn next_check(&self) -> Instant {
        match self.state {
            SessionState::Connected | SessionState::Reconnected => {
                (self.last_answer + self.ttl / 2).min(self.deadline)
            }
            SessionState::Suspended | SessionState::Expired => self.deadline,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SessionState::*;

    const TTL: Duration = Duration::from_secs(3);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn answered_keep_alives_stay_connected() {
        let t0 = Instant::now();
        let mut t = Tracker::new(TTL, t0, TTL);
        for i in 1..10 {
            let sent = t0 + ms(1000 * i);
            t.on_tick(sent);
            t.on_alive(sent + ms(5), sent, TTL);
            assert_eq!(t.state(), Connected);
        }
        assert_eq!(t.next_check(), t0 + ms(9005 + 1500));
    }

    #[test]
    fn silence_suspends_then_an_answer_reconnects() {
        let t0 = Instant::now();
        let mut t = Tracker::new(TTL, t0, TTL);
        t.on_tick(t0 + ms(1499));
        assert_eq!(t.state(), Connected);
        assert_eq!(t.next_check(), t0 + ms(1500));
        t.on_tick(t0 + ms(1500));
        assert_eq!(t.state(), Suspended);
        assert_eq!(t.next_check(), t0 + TTL);
        t.on_alive(t0 + ms(2000), t0 + ms(1900), TTL);
        assert_eq!(t.state(), Reconnected);
        t.on_alive(t0 + ms(2500), t0 + ms(2400), TTL);
        assert_eq!(t.state(), Reconnected);
        t.on_broken(t0 + ms(2600));
        assert_eq!(t.state(), Suspended);
    }

    #[test]
    fn a_broken_stream_suspends_at_once() {
        let t0 = Instant::now();
        let mut t = Tracker::new(TTL, t0, TTL);
        t.on_broken(t0 + ms(10));
        assert_eq!(t.state(), Suspended);
    }

    #[test]
    fn the_local_deadline_expires_for_good() {
        let t0 = Instant::now();
        let mut t = Tracker::new(TTL, t0, TTL);
        t.on_alive(t0 + ms(1000), t0 + ms(990), TTL);
        t.on_tick(t0 + ms(3989));
        assert_eq!(t.state(), Suspended);
        t.on_tick(t0 + ms(3990));
        assert_eq!(t.state(), Expired);
        t.on_alive(t0 + ms(4000), t0 + ms(3995), TTL);
        assert_eq!(t.state(), Expired);
    }

    #[test]
    fn the_deadline_never_moves_back() {
        let t0 = Instant::now();
        let mut t = Tracker::new(TTL, t0, TTL);
        // A late answer reporting little time left does not shorten the lease.
        t.on_alive(t0 + ms(100), t0 + ms(50), ms(500));
        t.on_tick(t0 + ms(2000));
        assert_eq!(t.state(), Suspended);
        t.on_tick(t0 + ms(2999));
        assert_eq!(t.state(), Suspended);
    }

    #[test]
    fn an_adopted_lease_expires_at_its_remaining_time() {
        let t0 = Instant::now();
        let mut t = Tracker::new(TTL, t0, ms(800));
        assert_eq!(t.next_check(), t0 + ms(800));
        t.on_tick(t0 + ms(800));
        assert_eq!(t.state(), Expired);
    }

    #[test]
    fn lease_gone_is_final() {
        let t0 = Instant::now();
        let mut t = Tracker::new(TTL, t0, TTL);
        t.on_gone();
        assert_eq!(t.state(), Expired);
        t.on_broken(t0 + ms(1));
        assert_eq!(t.state(), Expired);
    }
}
