//! Reconnect grace bookkeeping: which stream names lost their publisher and until when they
//! wait for another one. Sans-IO (every instant is a parameter); the hub keeps the streams.

use std::collections::HashMap;
use std::time::Instant;

/// One name whose publisher was lost.
#[derive(Clone, Copy, Debug)]
struct Hold {
    /// When the grace ends.
    until: Instant,
    /// A new publisher claimed the name and is negotiating; if its offer is refused the name
    /// is held again, until the same deadline.
    resumed: bool,
}

/// What a new claim of a name finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Found {
    /// Not held: the name is free or someone publishes it.
    NotHeld,
    /// Held within its grace: the claim takes the stream over.
    Resumed,
    /// Held, but the grace is over (its expiry has not run yet).
    Expired,
}

/// What becomes of a name whose resuming claim was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum GivenBack {
    /// The claim had not resumed a held stream.
    NotResumed,
    /// Held again, until the same deadline.
    HeldAgain,
    /// The grace ended meanwhile: the stream ends.
    GraceOver,
}

#[derive(Default)]
pub(super) struct Holds {
    names: HashMap<String, Hold>,
}

impl Holds {
    /// Holds `name` until `until` (replacing an earlier hold).
    pub fn hold(&mut self, name: &str, until: Instant) {
        let hold = Hold {
            until,
            resumed: false,
        };
        self.names.insert(name.to_string(), hold);
    }

    /// True while `name` waits for a publisher.
    pub fn is_held(&self, name: &str) -> bool {
        self.names.get(name).is_some_and(|h| !h.resumed)
    }

    /// A claim of `name` at `now`.
    pub fn claim(&mut self, name: &str, now: Instant) -> Found {
        match self.names.get_mut(name) {
            Some(h) if !h.resumed && now < h.until => {
                h.resumed = true;
                Found::Resumed
            }
            Some(h) if !h.resumed => {
                self.names.remove(name);
                Found::Expired
            }
            _ => Found::NotHeld,
        }
    }

    /// The claim that resumed `name` was refused: it is held again if its grace is not over.
    pub fn give_back(&mut self, name: &str, now: Instant) -> GivenBack {
        match self.names.get_mut(name) {
            Some(h) if h.resumed && now < h.until => {
                h.resumed = false;
                GivenBack::HeldAgain
            }
            Some(h) if h.resumed => {
                self.names.remove(name);
                GivenBack::GraceOver
            }
            _ => GivenBack::NotResumed,
        }
    }

    /// The name's stream ended: nothing is held for it any more.
    pub fn forget(&mut self, name: &str) {
        self.names.remove(name);
    }

    /// Takes out and returns the held names whose grace is over at `now`.
    pub fn expired(&mut self, now: Instant) -> Vec<String> {
        self.take_held(|h| now >= h.until)
    }

    /// Takes out every held name (server shutdown).
    pub fn drain_held(&mut self) -> Vec<String> {
        self.take_held(|_| true)
    }

    fn take_held(&mut self, due: impl Fn(&Hold) -> bool) -> Vec<String> {
        let names: Vec<String> = self
            .names
            .iter()
            .filter(|(_, h)| !h.resumed && due(h))
            .map(|(n, _)| n.clone())
            .collect();
        for n in &names {
            self.names.remove(n);
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_hold_is_resumed_within_its_grace_once() {
        let t0 = Instant::now();
        let mut h = Holds::default();
        h.hold("cam", t0 + Duration::from_secs(10));
        assert!(h.is_held("cam"));
        assert_eq!(h.claim("cam", t0 + Duration::from_secs(9)), Found::Resumed);
        assert!(!h.is_held("cam"), "publishing again");
        assert_eq!(
            h.claim("cam", t0),
            Found::NotHeld,
            "a second claim is not a resume"
        );
        assert!(h.expired(t0 + Duration::from_secs(60)).is_empty());
    }

    #[test]
    fn a_refused_resume_holds_again_until_the_same_deadline() {
        let t0 = Instant::now();
        let mut h = Holds::default();
        h.hold("cam", t0 + Duration::from_secs(10));
        h.claim("cam", t0);
        assert_eq!(
            h.give_back("cam", t0 + Duration::from_secs(1)),
            GivenBack::HeldAgain
        );
        assert!(h.is_held("cam"));
        assert!(h.expired(t0 + Duration::from_secs(9)).is_empty());
        assert_eq!(
            h.expired(t0 + Duration::from_secs(10)),
            vec!["cam".to_string()]
        );
        assert!(!h.is_held("cam"));
        // Refused after the deadline: not held again.
        h.hold("cam", t0 + Duration::from_secs(10));
        h.claim("cam", t0);
        assert_eq!(
            h.give_back("cam", t0 + Duration::from_secs(11)),
            GivenBack::GraceOver
        );
        assert!(!h.is_held("cam"));
        assert_eq!(h.give_back("cam", t0), GivenBack::NotResumed);
    }

    #[test]
    fn past_its_grace_a_claim_finds_it_expired() {
        let t0 = Instant::now();
        let mut h = Holds::default();
        h.hold("cam", t0 + Duration::from_secs(10));
        assert_eq!(h.claim("cam", t0 + Duration::from_secs(10)), Found::Expired);
        assert_eq!(h.claim("cam", t0), Found::NotHeld);
        h.hold("a", t0 + Duration::from_secs(1));
        h.hold("b", t0 + Duration::from_secs(5));
        assert_eq!(h.drain_held().len(), 2);
    }
}
