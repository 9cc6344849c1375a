//! Perfect negotiation (WebRTC specification, section 10.7) as plain decisions: no IO.
//!
//! The peer task runs every negotiation step to completion before it looks at the next
//! signal, so "making an offer" never overlaps a remote description here; a collision is
//! an offer that arrives while our own offer is outstanding.

use confab_proto::SdpType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signaling {
    Stable,
    HaveLocalOffer,
    HaveRemoteOffer,
}

/// What to do with a remote description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The impolite side ignores a colliding offer (and the candidates that follow it).
    Ignore,
    /// Apply it; roll our own offer back first when it collides; answer an offer.
    Apply { rollback: bool, answer: bool },
}

#[derive(Debug)]
pub(crate) struct Negotiation {
    polite: bool,
    signaling: Signaling,
    ignoring_offer: bool,
    /// Our own wish to offer, given up to a polite rollback: offer again once stable.
    offer_wanted: bool,
}

impl Negotiation {
    /// Of two peers, the one whose id sorts lower is polite.
    pub(crate) fn new(local_id: &str, remote_id: &str) -> Self {
        Self {
            polite: local_id < remote_id,
            signaling: Signaling::Stable,
            ignoring_offer: false,
            offer_wanted: false,
        }
    }

    /// Whether to offer now for a negotiation-needed event; if not, it is remembered.
    pub(crate) fn may_offer(&mut self) -> bool {
        if self.signaling == Signaling::Stable {
            self.offer_wanted = false;
            true
        } else {
            self.offer_wanted = true;
            false
        }
    }

    pub(crate) fn local_offer_set(&mut self) {
        self.signaling = Signaling::HaveLocalOffer;
    }

    pub(crate) fn on_remote(&mut self, kind: SdpType) -> Step {
        let collision = kind == SdpType::Offer && self.signaling != Signaling::Stable;
        self.ignoring_offer = collision && !self.polite;
        if self.ignoring_offer {
            return Step::Ignore;
        }
        if collision {
            self.offer_wanted = true;
        }
        Step::Apply {
            rollback: collision && self.signaling == Signaling::HaveLocalOffer,
            answer: kind == SdpType::Offer,
        }
    }

    pub(crate) fn remote_applied(&mut self, kind: SdpType) {
        self.signaling = match kind {
            SdpType::Offer => Signaling::HaveRemoteOffer,
            SdpType::Answer => Signaling::Stable,
        };
    }

    /// Our answer is set: stable again. Returns whether an offer we gave up waits to be made.
    pub(crate) fn local_answer_set(&mut self) -> bool {
        self.signaling = Signaling::Stable;
        self.stable_with_offer_wanted()
    }

    /// After a remote answer: whether an offer we deferred waits to be made.
    pub(crate) fn stable_with_offer_wanted(&mut self) -> bool {
        if self.signaling == Signaling::Stable && self.offer_wanted {
            self.offer_wanted = false;
            return true;
        }
        false
    }

    /// Our offer is out and no answer has come.
    pub(crate) fn awaiting_answer(&self) -> bool {
        self.signaling == Signaling::HaveLocalOffer
    }

    /// Candidates of an offer we ignore fail to apply; that is expected, not an error.
    pub(crate) fn ignoring_offer(&self) -> bool {
        self.ignoring_offer
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_offer_awaits_its_answer_until_the_answer_or_a_rollback() {
        let mut us = Negotiation::new("p1", "p2");
        assert!(!us.awaiting_answer());
        assert!(us.may_offer());
        us.local_offer_set();
        assert!(us.awaiting_answer());
        us.remote_applied(SdpType::Answer);
        assert!(!us.awaiting_answer());

        us.local_offer_set();
        // The polite side rolls its offer back for a colliding one: no answer awaited.
        assert_eq!(
            us.on_remote(SdpType::Offer),
            Step::Apply {
                rollback: true,
                answer: true
            }
        );
        us.remote_applied(SdpType::Offer);
        assert!(!us.awaiting_answer());
    }

    use super::*;

    #[test]
    fn the_lower_id_is_polite_and_rolls_back_on_glare() {
        let mut polite = Negotiation::new("p1", "p2");
        let mut impolite = Negotiation::new("p2", "p1");
        assert!(polite.may_offer());
        assert!(impolite.may_offer());
        polite.local_offer_set();
        impolite.local_offer_set();
        // Both offers cross.
        assert_eq!(impolite.on_remote(SdpType::Offer), Step::Ignore);
        assert!(impolite.ignoring_offer());
        assert_eq!(
            polite.on_remote(SdpType::Offer),
            Step::Apply {
                rollback: true,
                answer: true
            }
        );
        polite.remote_applied(SdpType::Offer);
        // The polite side answers, then makes the offer it gave up.
        assert!(polite.local_answer_set());
        assert_eq!(
            impolite.on_remote(SdpType::Answer),
            Step::Apply {
                rollback: false,
                answer: false
            }
        );
        impolite.remote_applied(SdpType::Answer);
        assert!(!impolite.stable_with_offer_wanted());
    }

    #[test]
    fn an_offer_wanted_while_busy_is_made_once_stable() {
        let mut n = Negotiation::new("p1", "p2");
        assert!(n.may_offer());
        n.local_offer_set();
        assert!(!n.may_offer(), "not while our offer is outstanding");
        assert_eq!(
            n.on_remote(SdpType::Answer),
            Step::Apply {
                rollback: false,
                answer: false
            }
        );
        n.remote_applied(SdpType::Answer);
        assert!(n.stable_with_offer_wanted());
        assert!(!n.stable_with_offer_wanted());
    }

    #[test]
    fn a_plain_offer_is_answered() {
        let mut n = Negotiation::new("p2", "p1");
        assert_eq!(
            n.on_remote(SdpType::Offer),
            Step::Apply {
                rollback: false,
                answer: true
            }
        );
        n.remote_applied(SdpType::Offer);
        assert!(!n.local_answer_set());
    }
}
